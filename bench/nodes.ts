/**
 * `npm run bench:nodes`: volumes per second created end to end by real
 * `volstate serve` processes on one database, on 1 and on 3 nodes, and
 * the time to take back a SIGKILLed node's work.
 *
 * Every client runs volume lifecycles over HTTP: POST a volume (1 GiB,
 * file driver on one shared storage directory), then DELETE it with
 * `Prefer: wait=60`, which is accepted as soon as the volume is available.
 * "Volumes/s" counts the volumes that reached `available` (BACKEND_CREATED
 * in the history) during the measured window; each was also deleted.
 *
 * Two regimes:
 *   - backend-bound: every driver operation takes BENCH_LATENCY_MS (1000 ms,
 *     as creating a LUN on a real array may): a node's 16 worker slots (set
 *     so, see SLOTS) are
 *     what bounds it (16 / 2 s of driver time per volume = 8 volumes/s), so
 *     nodes add slots and throughput should grow with them. The latency is
 *     that long so that 3 nodes' worth (24/s) stays far below what two cores
 *     can carry: at 100 ms one node's slots (80/s) already need most of
 *     them, and 3 nodes could only show the machine's limit. The window
 *     (BENCH_SECONDS, 20) is ten lifecycles long, so the start, when every
 *     slot creates and none deletes yet, does not count for much (at 12 s it
 *     made 1 node look 15 % faster than its slots allow, and 3 nodes / 1
 *     node 2.2 instead of 2.9). Each run prints the rows each node owned
 *     (its slots in use) and those queued, sampled: all slots taken, rows
 *     waiting: the slots are the bound;
 *   - CPU-bound: no added latency, each commit's default worker concurrency:
 *     nodes, clients and PostgreSQL share this machine's cores, so more
 *     nodes cannot add much here.
 *
 * `--compare <commit>`: the same runs on another commit's nodes too (a git
 * worktree, bench/worktree.ts), one after the other, and the ratios.
 *
 * Recovery: 3 nodes under the backend-bound load with the default worker
 * timeout (5 s) and heartbeat (1 s); one node is SIGKILLed while it owns
 * steps; measured from the kill until no row is owned by the dead worker,
 * and until every one of those rows is at rest again.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import postgres from 'postgres';
import { ensureDatabase, sqlClient } from '../db/connect.ts';
import { startEmbedded, type EmbeddedServer } from '../db/servers/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { MODELS } from '../machines/index.ts';
import { DEFAULT_DB_POOL } from '../src/config.ts';
import { call, startNode, type VolstateNode } from '../test/helpers/nodes.ts';
import { checkout, here, type Target } from './worktree.ts';
import { median } from './stats.ts';
import { machineBusyMs, postmasterPid, processCpuMs } from './cpu.ts';
import { printStatements, resetStatements, STATEMENT_SETTINGS } from './statements.ts';

const USAGE = `usage: npm run bench:nodes -- [--compare <commit>]
       npm run bench:connections
  --compare  run the same nodes of another commit too, side by side, and print the ratios
  environment: BENCH_SECONDS (20), BENCH_CLIENTS (48), BENCH_LATENCY_MS (1000), BENCH_ONLY (a regime's name prefix: backend, CPU),
    BENCH_ROUNDS (1: with --compare, the runs alternate commits this many times and the ratios are of the medians),
    BENCH_WHY=1 (each run's statements per volume, their execution and planning, from pg_stat_statements; BENCH_WHY_TOP lines, 15)`;
let parsed;
try {
  parsed = parseArgs({
    allowPositionals: true,
    options: { compare: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (parsed.values.help || parsed.positionals.some((p) => p !== 'connections')) {
  console.log(USAGE);
  process.exit(parsed.values.help ? 0 : 2);
}
const values = { ...parsed.values, connections: parsed.positionals[0] === 'connections' };
const THIS = here();
const targets: Target[] = values.compare ? [checkout(values.compare, 'bench:nodes'), THIS] : [THIS];

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 48);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 1000);
const WARMUP_MS = 1500;
const ONLY = process.env.BENCH_ONLY;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 1);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(`BENCH_ROUNDS must be a whole number of at least 1, not ${process.env.BENCH_ROUNDS}\n${USAGE}`);
  process.exit(2);
}
/**
 * Each node's VOLSTATE_WORKER_CONCURRENCY in the backend-bound regime and the recovery run, set
 * for both commits: there the slots are the bound the nodes add up (the default is 64 since
 * issue 19; 48 clients would not fill one node's). The CPU-bound regime and bench:connections
 * run each commit's default.
 */
const SLOTS = 16;
const WHY = process.env.BENCH_WHY === '1';

const WAIT = { prefer: 'wait=60' };

let dbCount = 0;

interface Cluster {
  url: string;
  nodes: VolstateNode[];
  sql: postgres.Sql;
  stop(): Promise<void>;
}

async function cluster(
  pg: EmbeddedServer,
  count: number,
  latencyMs: number,
  timeoutMs = 5000,
  target: Target = THIS,
  /** VOLSTATE_WORKER_CONCURRENCY; null: the node's default */
  slots: number | null = SLOTS,
): Promise<Cluster> {
  const name = `bench_nodes_${++dbCount}`;
  await ensureDatabase(pg.adminUrl, name);
  const url = pg.urlFor(name);
  const dir = mkdtempSync(join(tmpdir(), 'volstate-bench-nodes-'));
  const journal = join(dir, 'journal');
  writeFileSync(journal, '');
  const start = (i: number) =>
    startNode({
      databaseUrl: url,
      dataDir: join(dir, `node${i}`),
      storage: join(dir, 'storage'),
      journal,
      latencyMs,
      timeoutMs,
      // the defaults of a real deployment, not the test's fast ones
      env: {
        VOLSTATE_HEARTBEAT_MS: String(Math.min(1000, timeoutMs / 4)),
        VOLSTATE_WORKER_POLL_MS: '2000',
        VOLSTATE_DRIVER_JOURNAL: '',
        ...(slots === null ? {} : { VOLSTATE_WORKER_CONCURRENCY: String(slots) }),
      },
      // Side by side, both commits' nodes start the same way (their sources through their tsx), so
      // that only the code differs; alone, this tree's nodes run as the harness runs them (bundled).
      tree: targets.length > 1 ? target.dir : undefined,
    });
  let nodes: VolstateNode[];
  if (target === THIS) {
    await migrate(url); // this tree's schema first, so that its nodes start at once, together
    nodes = await Promise.all(Array.from({ length: count }, (_, i) => start(i)));
  } else {
    // another commit's schema: its first node migrates the database as it starts, then the others
    const first = await start(0);
    nodes = [first, ...(await Promise.all(Array.from({ length: count - 1 }, (_, i) => start(i + 1))))];
  }
  const sql = sqlClient(url, { max: 2, onnotice: () => {} });
  return {
    url,
    nodes,
    sql,
    async stop() {
      for (const n of nodes) n.proc.kill('SIGKILL');
      await Promise.all(nodes.map((n) => n.exited));
      await sql.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** Clients running create → DELETE(wait) until `stop()`; spread over the live nodes. */
function load(c: Cluster) {
  let running = true;
  let next = 0;
  let errors = 0;
  const live = () => c.nodes.filter((n) => n.proc.exitCode === null && n.proc.signalCode === null);
  const api = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    for (let tries = 0; tries < 9; tries++) {
      const pool = live();
      const r = await call(pool[next++ % pool.length]!, method, path, body, headers);
      if (r.status !== 0) return r;
    }
    throw new Error(`no node answered ${method} ${path}`);
  };
  const clients = Array.from({ length: CLIENTS }, async () => {
    while (running) {
      const created = await api('POST', '/v3/volumes', { volume: { size: 1 } });
      if (created.status !== 202) {
        errors++;
        continue;
      }
      const r = await api('DELETE', `/v3/volumes/${created.body.volume.id}`, undefined, WAIT);
      if (r.status !== 202) errors++;
    }
  });
  return {
    async stop() {
      running = false;
      await Promise.all(clients);
      return errors;
    },
  };
}

/**
 * For `ms`: how many rows each node owns (a step in flight, so a worker slot
 * taken) and how many wait for a worker, sampled every 100 ms. Slots all
 * taken and rows queued: the nodes' slots are what bounds the throughput.
 */
async function ownedRows(c: Cluster, ms: number): Promise<{ perNode: number[]; queued: number; samples: number }> {
  const sums = new Map(c.nodes.map((n) => [n.workerId, 0]));
  let queued = 0;
  let samples = 0;
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const rows = await c.sql<{ owner: string | null; n: number }[]>`
      SELECT owner, count(*)::int AS n FROM resource_states
      WHERE owner IS NOT NULL OR state LIKE 'creating%' OR state LIKE 'deleting%' GROUP BY owner`;
    for (const r of rows) {
      if (r.owner === null) queued += r.n;
      else if (sums.has(r.owner)) sums.set(r.owner, sums.get(r.owner)! + r.n);
    }
    samples++;
    await new Promise((r) => setTimeout(r, 100));
  }
  return { perNode: [...sums.values()].map((s) => s / samples), queued: queued / samples, samples };
}

async function createdBetween(sql: postgres.Sql, from: Date, to: Date): Promise<number> {
  const [row] = await sql`
    SELECT count(*)::int AS n FROM state_transitions
    WHERE resource_type = 'volume' AND event = 'BACKEND_CREATED' AND at >= ${from} AND at < ${to}`;
  return row!.n as number;
}

interface Rate {
  perSecond: number;
  /** the whole machine's busy CPU (nodes, PostgreSQL, these clients) over the window, per volume made, ms */
  cpuMs: number;
  /** of it, per volume made, ms: PostgreSQL (postmaster and backends), the nodes together, these clients */
  split: { postgres: number; nodes: number; clients: number };
}

/** CPU ms used so far: the machine, PostgreSQL, the nodes, this process (bench/cpu.ts). */
function cpuNow(postmaster: number, nodes: readonly VolstateNode[]) {
  const own = process.cpuUsage();
  return {
    machine: machineBusyMs(),
    postgres: processCpuMs(postmaster, true),
    nodes: nodes.reduce((sum, n) => sum + processCpuMs(n.proc.pid!), 0),
    clients: (own.user + own.system) / 1000,
  };
}

async function throughput(pg: EmbeddedServer, count: number, latencyMs: number, target: Target): Promise<Rate> {
  const slots = latencyMs > 0 ? SLOTS : null;
  const c = await cluster(pg, count, latencyMs, 5000, target, slots);
  try {
    const l = load(c);
    await new Promise((r) => setTimeout(r, WARMUP_MS));
    const [{ now: from }] = (await c.sql`SELECT now()`) as unknown as [{ now: Date }];
    if (WHY) await resetStatements(c.sql);
    const postmaster = await postmasterPid(c.sql as never);
    const cpuFrom = cpuNow(postmaster, c.nodes);
    const busy = await ownedRows(c, SECONDS * 1000);
    const cpuTo = cpuNow(postmaster, c.nodes);
    const [{ now: to }] = (await c.sql`SELECT now()`) as unknown as [{ now: Date }];
    const errors = await l.stop();
    if (errors) console.log(`  (${errors} requests were refused or failed)`);
    console.log(
      `    rows owned per node (mean of ${busy.samples} samples, ${slots ?? 'the default'} worker slots each): ${busy.perNode.map((n) => n.toFixed(1)).join(', ')}; queued ${busy.queued.toFixed(1)}`,
    );
    const made = await createdBetween(c.sql, from, to);
    if (WHY) await printStatements(c.sql, made, 'volume', 15);
    const per = (k: keyof typeof cpuTo) => (cpuTo[k] - cpuFrom[k]) / made;
    return {
      perSecond: made / ((to.getTime() - from.getTime()) / 1000),
      cpuMs: per('machine'),
      split: { postgres: per('postgres'), nodes: per('nodes'), clients: per('clients') },
    };
  } finally {
    await c.stop();
  }
}

const atRest = (type: string, state: string) => {
  const index = MODELS[type as keyof typeof MODELS].index;
  return !index.isTransient(state);
};

async function recovery(pg: EmbeddedServer): Promise<{ owned: number; takenBackMs: number; restMs: number; timeoutMs: number }> {
  const timeoutMs = 5000;
  const c = await cluster(pg, 3, LATENCY_MS, timeoutMs);
  try {
    const l = load(c);
    await new Promise((r) => setTimeout(r, 3000));
    const victim = c.nodes[1]!;
    let owned: { resource_type: string; resource_id: string }[] = [];
    while (owned.length === 0) {
      owned = await c.sql`SELECT resource_type, resource_id FROM resource_states WHERE owner = ${victim.workerId}`;
    }
    victim.proc.kill('SIGKILL');
    const killedAt = Date.now();
    await victim.exited;
    let takenBackMs = 0;
    for (;;) {
      const [row] = await c.sql`SELECT count(*)::int AS n FROM resource_states WHERE owner = ${victim.workerId}`;
      if (row!.n === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    takenBackMs = Date.now() - killedAt;
    const ids = owned.map((o) => o.resource_id);
    for (;;) {
      const rows = await c.sql`SELECT resource_type, state FROM resource_states WHERE resource_id IN ${c.sql(ids)}`;
      if (rows.every((r) => atRest(r.resource_type, r.state))) break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const restMs = Date.now() - killedAt;
    await l.stop();
    return { owned: owned.length, takenBackMs, restMs, timeoutMs };
  } finally {
    await c.stop();
  }
}

/** Sessions per application_name (the nodes name theirs: volstate, volstate-lock). */
async function sessions(sql: postgres.Sql): Promise<Record<string, number>> {
  const rows = await sql<{ app: string; n: number }[]>`
    SELECT application_name AS app, count(*)::int AS n FROM pg_stat_activity
    WHERE datname = current_database() AND pid <> pg_backend_pid() GROUP BY 1`;
  return Object.fromEntries(rows.map((r) => [r.app, r.n]));
}

const total = (s: Record<string, number>) => Object.values(s).reduce((a, n) => a + n, 0);

/**
 * `npm run bench:connections`: what BENCH_NODES (10) node processes at
 * their defaults hold on one database: at rest, at the peak of a
 * backend-bound load (sampled every 50 ms), and once it is over; against
 * the budget docs/active-active.md states: per node at most VOLSTATE_DB_POOL (8)
 * + 1 LISTEN session + 1 shared lock session + the sessions waiting for a
 * lock held elsewhere (none without contention) and VOLSTATE_LOCK_IDLE_SESSIONS
 * (2) kept once such a wait is over.
 */
async function connectionBudget(pg: EmbeddedServer) {
  const count = Number(process.env.BENCH_NODES ?? 10);
  const perNode = DEFAULT_DB_POOL + 1 + 1 + 2;
  const c = await cluster(pg, count, LATENCY_MS, 5000, THIS, null);
  try {
    const rest = await sessions(c.sql);
    const l = load(c);
    let peak: Record<string, number> = {};
    const until = Date.now() + SECONDS * 1000;
    while (Date.now() < until) {
      const now = await sessions(c.sql);
      if (total(now) > total(peak)) peak = now;
      await new Promise((r) => setTimeout(r, 50));
    }
    const errors = await l.stop();
    await new Promise((r) => setTimeout(r, 1000));
    const after = await sessions(c.sql);
    const show = (s: Record<string, number>) =>
      `${total(s)} (${Object.entries(s)
        .map(([a, n]) => `${a || '(none)'} ${n}`)
        .join(', ')})`;
    console.log(
      `connections of ${count} nodes (defaults, ${CLIENTS} clients, ${LATENCY_MS} ms per driver operation${errors ? `, ${errors} requests refused` : ''}):`,
    );
    console.log(`  at rest:        ${show(rest)}`);
    console.log(`  peak under load: ${show(peak)}`);
    console.log(`  after the load: ${show(after)}`);
    console.log(
      `  budget: ${count} × ${perNode} = ${count * perNode}; peak is ${((total(peak) / (count * perNode)) * 100).toFixed(0)}% of it, ${(total(peak) / count).toFixed(1)} per node`,
    );
  } finally {
    await c.stop();
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-bench-nodes-pg-'));
  chmodSync(dir, 0o755);
  const pg = await startEmbedded({
    dir,
    settings: { synchronous_commit: 'off', max_connections: '600', ...(WHY ? STATEMENT_SETTINGS : {}) },
  });
  try {
    if (values.connections) return await connectionBudget(pg);
    console.log(
      `volstate nodes benchmark: ${CLIENTS} HTTP clients, ${SECONDS}s per run, file driver on shared storage, embedded PostgreSQL (synchronous_commit=off), Node ${process.version}`,
    );
    // regime → `<target> <n>` → volumes/s and machine CPU per volume, one entry per round
    const results = new Map<string, Map<string, Rate[]>>();
    for (const [regime, latency] of [
      [`backend-bound (${LATENCY_MS} ms per driver operation)`, LATENCY_MS],
      ['CPU-bound (no added latency)', 0],
    ] as const) {
      // BENCH_ONLY=<regime prefix>: that regime alone, no recovery run
      if (ONLY && !regime.startsWith(ONLY)) continue;
      const r = new Map<string, Rate[]>();
      results.set(regime, r);
      for (const count of [1, 3])
        for (let round = 1; round <= ROUNDS; round++)
          for (const target of targets) {
            const rate = await throughput(pg, count, latency, target);
            const key = `${target.name} ${count}`;
            if (!r.has(key)) r.set(key, []);
            r.get(key)!.push(rate);
            console.log(
              `  ${regime}, ${target.name}, ${count} node${count > 1 ? 's' : ''}${ROUNDS > 1 ? ` (round ${round})` : ''}: ${rate.perSecond.toFixed(1)} volumes/s, ${rate.cpuMs.toFixed(1)} ms of CPU per volume (PostgreSQL ${rate.split.postgres.toFixed(1)}, node${count > 1 ? 's' : ''} ${rate.split.nodes.toFixed(1)}, clients ${rate.split.clients.toFixed(1)})`,
            );
          }
      if (latency > 0)
        console.log(
          `    (the nodes' worker slots allow at most ${((SLOTS * 1000) / (2 * latency)).toFixed(1)} volumes/s per node: ${SLOTS} slots, 2 driver operations per volume)`,
        );
    }
    const rate = (runs: Rate[]) => median(runs.map((x) => x.perSecond));
    const cpu = (runs: Rate[]) => median(runs.map((x) => x.cpuMs));
    const spread = (runs: Rate[]) =>
      runs.length > 1
        ? ` (${Math.min(...runs.map((x) => x.perSecond)).toFixed(1)}–${Math.max(...runs.map((x) => x.perSecond)).toFixed(1)})`
        : '';
    console.log(`\nratios (same run${ROUNDS > 1 ? `, medians of ${ROUNDS} alternating rounds` : ''}):`);
    for (const [regime, r] of results) {
      for (const t of targets) {
        const [one, three] = [r.get(`${t.name} 1`)!, r.get(`${t.name} 3`)!];
        console.log(
          `  ${regime}, ${t.name}: 1 node ${rate(one).toFixed(1)}${spread(one)}, 3 nodes ${rate(three).toFixed(1)}${spread(three)} volumes/s; 3 nodes / 1 node = ${(rate(three) / rate(one)).toFixed(2)}`,
        );
      }
      if (targets.length === 2) {
        const [before, after] = targets.map((t) => t.name) as [string, string];
        for (const n of [1, 3]) {
          const [b, a] = [r.get(`${before} ${n}`)!, r.get(`${after} ${n}`)!];
          console.log(
            `  ${regime}, ${n} node${n > 1 ? 's' : ''}: ${after} / ${before} = ${(rate(a) / rate(b)).toFixed(2)} (volumes/s), CPU per volume ${(cpu(a) / cpu(b)).toFixed(2)}`,
          );
        }
      }
    }
    if (ONLY) return;
    const r = await recovery(pg);
    console.log(
      `\nrecovery: SIGKILLed a node owning ${r.owned} rows (worker timeout ${r.timeoutMs} ms): ` +
        `taken back by the others after ${r.takenBackMs} ms, all at rest after ${r.restMs} ms`,
    );
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
