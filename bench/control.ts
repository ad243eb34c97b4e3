/**
 * `npm run bench:control`: the control plane's speed where a user feels it.
 *
 * One `volstate serve` on the embedded PostgreSQL (the fake driver: no
 * backend time), and clients that do what a real client does: create a
 * 1 GiB volume, poll `GET /volumes/{id}` every 5 ms until it is available,
 * extend it to 2 GiB and poll again, delete it and poll until it is gone;
 * again, for BENCH_SECONDS (8). Three sittings, each on a fresh database:
 *
 *   - 1 client;
 *   - 16 clients in one project (every request meets the project's rows);
 *   - 16 clients in 16 projects (only what the whole cloud shares).
 *
 * The latencies are the server's, read from the history afterwards (the
 * polling interval does not hide or add anything): create → available is
 * the state row's creation to its first `available`; extend from the
 * EXTEND transition to the next `available`; delete from DELETE to
 * `deleted`. Lifecycles counts those completed inside the window.
 *
 * Each sitting prints the CPU a lifecycle cost the machine, and of it
 * PostgreSQL (postmaster and backends), the node and these clients
 * (bench/cpu.ts, /proc): on two cores that, not a wait, is what bounds the
 * lifecycles.
 *
 * `--compare <commit>` runs the same sittings against another commit's
 * server in the same invocation (a git worktree under
 * node_modules/.cache/volstate/, `npm ci` there once), one after the other
 * per sitting, so both see the same machine. pgbench's rate for the
 * volume machine's own statement is printed beside (bench/enforcer.ts's
 * uncontended run), the physical anchor of this machine at that moment.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { appendFileSync, chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { ensureDatabase, sqlClient, tcpUrl } from '../db/connect.ts';
import { checkout, here, ROOT, type Target } from './worktree.ts';
import { freePort, startEmbedded } from '../db/servers/embedded.ts';
import { median } from './stats.ts';
import { machineBusyMs, processCpuMs } from './cpu.ts';
import { printStatements, resetStatements, STATEMENT_SETTINGS } from './statements.ts';

const USAGE = `usage: npm run bench:control -- [--compare <commit>] [--floor] [--rounds N (1)] [--seconds N (8)] [--only <sitting name prefix>] [--why]
  --compare  run the same sittings against another commit's server, side by side, and print the ratios
  --floor    run them against bench/floor-server.ts too: one CAS statement with its history per transition and
             nothing else, the most lifecycles this machine allows any server that keeps its state in PostgreSQL
  --seconds  length of each sitting (BENCH_SECONDS)
  --only     the sittings whose name starts so: '1 client', '16 clients, 1 project', '16 clients, 16 projects'
  --why      where the time went: statements per lifecycle, the wait before each transition, what backends waited on
  --rounds   run each sitting this many times, alternating the commits, and compare the medians (BENCH_ROUNDS, 1):
             this machine's speed moves by 10-30 % from one minute to the next
  each sitting first runs its load for BENCH_WARMUP_SECONDS (2), uncounted`;
let parsed;
try {
  parsed = parseArgs({
    options: {
      compare: { type: 'string' },
      floor: { type: 'boolean', default: false },
      seconds: { type: 'string', default: process.env.BENCH_SECONDS ?? '8' },
      only: { type: 'string' },
      // where the time went: statements per lifecycle (pg_stat_statements) and what the backends waited on
      why: { type: 'boolean', default: false },
      rounds: { type: 'string', default: process.env.BENCH_ROUNDS ?? '1' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
} catch (err) {
  console.error(`${(err as Error).message}\n${USAGE}`);
  process.exit(2);
}
if (parsed.values.help) {
  console.log(USAGE);
  process.exit(0);
}
const { values } = parsed;
const SECONDS = Number(values.seconds);
const ROUNDS = Number(values.rounds);
if (!Number.isInteger(ROUNDS) || ROUNDS < 1) {
  console.error(`--rounds must be a whole number of at least 1, not ${values.rounds}\n${USAGE}`);
  process.exit(2);
}
const POLL_MS = Number(process.env.BENCH_POLL_MS ?? 5);
const WARMUP_SECONDS = Number(process.env.BENCH_WARMUP_SECONDS ?? 2);

interface Sitting {
  name: string;
  clients: number;
  projects: number;
}

const SITTINGS: Sitting[] = [
  { name: '1 client', clients: 1, projects: 1 },
  { name: '16 clients, 1 project', clients: 16, projects: 1 },
  { name: '16 clients, 16 projects', clients: 16, projects: 16 },
].filter((s) => !values.only || s.name.startsWith(values.only));

interface Server {
  url: string;
  proc: ChildProcess;
}

async function serve(target: Target, databaseUrl: string, dataDir: string): Promise<Server> {
  const port = await freePort();
  // BENCH_CPU_PROF=<dir>: the server's CPU profile, written when it stops.
  const prof = process.env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${resolve(process.env.BENCH_CPU_PROF)}`] : [];
  // BENCH_NODE_FLAGS='--trace-deopt …': flags for the server's node, such as V8's tracing, which
  // NODE_OPTIONS refuses; what they print on stdout goes to BENCH_SERVER_LOG with the server's log.
  const flags = (process.env.BENCH_NODE_FLAGS ?? '').split(/\s+/).filter(Boolean);
  const loader = pathToFileURL(join(target.dir, 'node_modules', 'tsx', 'dist', 'loader.mjs')).href;
  const proc = spawn(
    process.execPath,
    [...prof, ...flags, '--import', loader, target.entry ?? 'src/cli.ts', 'serve', '--port', String(port)],
    {
      cwd: target.dir,
      env: {
        ...process.env,
        DATABASE_URL: target.socket ? databaseUrl : tcpUrl(databaseUrl),
        VOLSTATE_DATA_DIR: dataDir,
        VOLSTATE_DRIVER: 'fake',
        // BENCH_LOG_LEVEL=info with BENCH_SERVER_LOG=<file>: what the server said, for a look afterwards.
        LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'error',
      },
      stdio: ['ignore', process.env.BENCH_SERVER_LOG ? 'pipe' : 'ignore', 'pipe'],
    },
  );
  proc.stdout?.on('data', (b: Buffer) => appendFileSync(process.env.BENCH_SERVER_LOG!, b));
  // However this process ends (an error, a closed stdout), the server goes with it.
  const orphan = () => proc.kill('SIGKILL');
  process.once('exit', orphan);
  proc.once('exit', () => process.off('exit', orphan));
  let err = '';
  return new Promise((resolveReady, reject) => {
    proc.stderr!.on('data', (b: Buffer) => {
      if (process.env.BENCH_SERVER_LOG) appendFileSync(process.env.BENCH_SERVER_LOG, b);
      err += b.toString();
      const url = /serving the Cinder v3 API at (\S+)\/v3/.exec(err)?.[1];
      if (url && /worker \S+ running/.test(err)) resolveReady({ url, proc });
    });
    proc.on('exit', (code) => reject(new Error(`${target.name}: the server exited (${code}) before it served:\n${err}`)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One client's lifecycles until `deadline`; counts the ones that ended in time. */
async function client(url: string, project: string, deadline: number, failures: string[]): Promise<number> {
  const headers = { 'x-auth-token': `admin:${project}`, 'openstack-api-version': 'volume 3.60', 'content-type': 'application/json' };
  interface Volume {
    id: string;
    status: string;
    size: number;
  }
  const api = async (method: string, path: string, body?: unknown): Promise<{ status: number; body: { volume?: Volume } }> => {
    const r = await fetch(`${url}/v3${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: text ? (JSON.parse(text) as { volume?: Volume }) : {} };
  };
  const until = async (id: string, done: (v: { status: number; volume?: Volume | undefined }) => boolean) => {
    for (;;) {
      const r = await api('GET', `/volumes/${id}`);
      const v = { status: r.status, volume: r.body.volume };
      if (done(v)) return;
      if (v.volume?.status?.startsWith('error')) throw new Error(`volume ${id} went to ${v.volume.status}`);
      await sleep(POLL_MS);
    }
  };
  let done = 0;
  while (Date.now() < deadline) {
    try {
      const created = await api('POST', '/volumes', { volume: { size: 1, name: 'bench' } });
      if (created.status !== 202) throw new Error(`create: ${created.status} ${JSON.stringify(created.body)}`);
      const id = created.body.volume!.id;
      await until(id, (v) => v.volume?.status === 'available');
      const extended = await api('POST', `/volumes/${id}/action`, { 'os-extend': { new_size: 2 } });
      if (extended.status !== 202) throw new Error(`extend: ${extended.status} ${JSON.stringify(extended.body)}`);
      await until(id, (v) => v.volume?.status === 'available' && v.volume.size === 2);
      const deleted = await api('DELETE', `/volumes/${id}`);
      if (deleted.status !== 202) throw new Error(`delete: ${deleted.status} ${JSON.stringify(deleted.body)}`);
      await until(id, (v) => v.status === 404);
      if (Date.now() <= deadline) done++;
    } catch (err) {
      failures.push((err as Error).message);
      if (failures.length > 20) throw err;
    }
  }
  return done;
}

interface Result {
  lifecycles: number;
  perSecond: number;
  create: [number, number];
  extend: [number, number];
  delete: [number, number];
  failures: string[];
  /** from the node's /metrics: group commit's statements and transitions, work kept and announced ('' when absent) */
  counters: string;
  /** CPU ms per lifecycle over the window: PostgreSQL (postmaster and backends), the node, these clients, the whole machine */
  cpu: { postgres: number; node: number; clients: number; machine: number };
}

/**
 * From the node's metrics (warm-up included): `N grouped statements carried M transitions` when it
 * grouped any, and how many rows made pending work its worker kept and how many were announced.
 */
async function nodeCounters(url: string): Promise<string> {
  const text = await (await fetch(`${url}/metrics`, { headers: { 'x-auth-token': 'admin:admin' } })).text().catch(() => '');
  const n = (name: string) => Number(new RegExp(`^volstate_group_commit_${name}_total (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  const work = (woken: string) =>
    Number(new RegExp(`^volstate_pending_work_total\\{woken="${woken}"\\} (\\d+)`, 'm').exec(text)?.[1] ?? NaN);
  const kept = Number.isNaN(work('kept')) ? '' : `  work kept ${work('kept')}, announced ${work('announced')}`;
  return (
    (Number.isNaN(n('statements')) || n('statements') === 0 ? '' : `  grouped: ${n('rows')} transitions in ${n('statements')} statements`) +
    kept
  );
}

/** p50 and p95 in ms of the server-side durations, from the history. */
async function latencies(databaseUrl: string): Promise<Pick<Result, 'create' | 'extend' | 'delete'>> {
  const sql = sqlClient(databaseUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await sql<{ kind: string; p50: number; p95: number }[]>`
      WITH h AS (
        -- Each transition with the first later arrival at rest of the same volume: a window over
        -- the volume's own few rows, so the query stays linear in the history (a correlated
        -- subquery per row made a 40 s window's history take minutes).
        SELECT event, from_state, at AS start,
          min(at) FILTER (WHERE split_part(to_state, '.', 1) = 'available') OVER later AS available,
          min(at) FILTER (WHERE split_part(to_state, '.', 1) = 'deleted') OVER later AS deleted
        FROM state_transitions WHERE resource_type = 'volume'
        WINDOW later AS (PARTITION BY resource_id ORDER BY version ROWS BETWEEN 1 FOLLOWING AND UNBOUNDED FOLLOWING)),
      spans AS (
        SELECT 'create' AS kind, start, available AS stop FROM h WHERE from_state IS NULL
        UNION ALL
        SELECT 'extend', start, available FROM h WHERE event = 'EXTEND'
        UNION ALL
        SELECT 'delete', start, deleted FROM h WHERE event = 'DELETE')
      SELECT kind,
        percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM stop - start)) * 1000 AS p50,
        percentile_cont(0.95) WITHIN GROUP (ORDER BY extract(epoch FROM stop - start)) * 1000 AS p95
      FROM spans WHERE stop IS NOT NULL GROUP BY kind`;
    const of = (k: string): [number, number] => {
      const r = rows.find((x) => x.kind === k);
      return r ? [Number(r.p50), Number(r.p95)] : [NaN, NaN];
    };
    return { create: of('create'), extend: of('extend'), delete: of('delete') };
  } finally {
    await sql.end();
  }
}

/**
 * --why: the statements' calls and time per lifecycle (pg_stat_statements,
 * reset at the window's start) and a sample every 10 ms of what the
 * database's backends were waiting on.
 */
async function explain(url: string) {
  const sql = sqlClient(url, { max: 1, onnotice: () => {} });
  await resetStatements(sql);
  const waits = new Map<string, number>();
  let samples = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      const rows = await sql<{ w: string; n: number }[]>`
        SELECT COALESCE(wait_event_type || ':' || wait_event, 'CPU') || ' (' || state || ')' AS w, count(*)::int AS n
        FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' GROUP BY 1`;
      for (const r of rows) waits.set(r.w, (waits.get(r.w) ?? 0) + r.n);
      samples++;
      await sleep(10);
    }
  })();
  return {
    async report(lifecycles: number) {
      sampling = false;
      await sampler;
      await printStatements(sql, lifecycles, 'lifecycle');
      // Which step the time goes to: each transition's wait since the one before it, summed per lifecycle.
      const steps = await sql<{ step: string; n: number; p50: number; p95: number; per: number }[]>`
        WITH h AS (
          SELECT event, to_state, extract(epoch FROM at - lag(at) OVER (PARTITION BY resource_id ORDER BY version)) * 1000 AS ms
          FROM state_transitions WHERE resource_type = 'volume')
        SELECT event || ' → ' || to_state AS step, count(*)::int AS n,
          percentile_cont(0.5) WITHIN GROUP (ORDER BY ms) AS p50, percentile_cont(0.95) WITHIN GROUP (ORDER BY ms) AS p95, sum(ms) AS per
        FROM h WHERE ms IS NOT NULL GROUP BY 1 ORDER BY sum(ms) DESC LIMIT 12`;
      console.log('    the wait before each transition (since the one before), ms p50 / p95, total per lifecycle:');
      for (const r of steps)
        console.log(
          `      ${Number(r.p50).toFixed(1).padStart(7)} / ${Number(r.p95).toFixed(1).padStart(7)}  ${(Number(r.per) / lifecycles).toFixed(1).padStart(6)}  ${r.step}`,
        );
      // When the slowest claims happened (ms into the window): together, a stall; spread, a queue.
      const slow = await sql<{ at: number; ms: number }[]>`
        WITH h AS (
          SELECT event, at, extract(epoch FROM at - lag(at) OVER (PARTITION BY resource_id ORDER BY version)) * 1000 AS ms
          FROM state_transitions WHERE resource_type = 'volume')
        SELECT (extract(epoch FROM at - (SELECT min(at) FROM state_transitions)) * 1000)::int AS at, ms::int AS ms
        FROM h WHERE event = 'SCHEDULE' ORDER BY ms DESC LIMIT 15`;
      console.log(
        `    the slowest claims (SCHEDULE after CREATE), at ms into the window: ${slow.map((r) => `${r.ms} ms at ${r.at}`).join(', ')}`,
      );
      console.log(`    active backends, mean over ${samples} samples, by what they waited on:`);
      for (const [w, n] of [...waits].sort((a, b) => b[1] - a[1]).slice(0, 10))
        console.log(`      ${(n / samples).toFixed(2).padStart(6)}  ${w}`);
      await sql.end();
    },
  };
}

let databases = 0;

/** The CPU the sitting's processes used so far, ms (bench/cpu.ts). */
function cpuNow(postmaster: number, server: ChildProcess) {
  const own = process.cpuUsage();
  return {
    postgres: processCpuMs(postmaster, true),
    node: processCpuMs(server.pid!),
    clients: (own.user + own.system) / 1000,
    machine: machineBusyMs(),
  };
}

async function sit(pg: Awaited<ReturnType<typeof startEmbedded>>, target: Target, sitting: Sitting, work: string): Promise<Result> {
  const name = `bench_control_${++databases}`;
  await ensureDatabase(pg.adminUrl, name);
  const url = pg.urlFor(name);
  const server = await serve(target, url, join(work, name));
  try {
    // A warm-up, not counted: the sitting's own load for WARMUP_SECONDS. The first requests compile
    // and prepare, and the server opens its pool and lock sessions; and PostgreSQL plans each
    // prepared statement afresh for its first five executions on each connection before it keeps a
    // generic plan, which a server running for days does once. (One lifecycle per client left a
    // quarter of the window's planning to that: 0.4 ms of a lifecycle's 1.6 ms, --why.)
    const warm = Date.now() + WARMUP_SECONDS * 1000;
    await Promise.all(Array.from({ length: sitting.clients }, (_, i) => client(server.url, `bench${i % sitting.projects}`, warm, [])));
    const sql = sqlClient(url, { max: 1, onnotice: () => {} });
    await sql`TRUNCATE state_transitions`;
    await sql.end();
    const failures: string[] = [];
    const started = Date.now();
    const deadline = started + SECONDS * 1000;
    const why = values.why ? await explain(url) : undefined;
    const postmaster = Number.parseInt(readFileSync(join(work, 'pg', 'pg', 'postmaster.pid'), 'utf8'), 10);
    const cpuFrom = cpuNow(postmaster, server.proc);
    // Read at the deadline: the lifecycles still under way then end afterwards, uncounted.
    const cpuAt = new Promise<ReturnType<typeof cpuNow>>((r) =>
      setTimeout(() => r(cpuNow(postmaster, server.proc)), deadline - Date.now()),
    );
    const counts = await Promise.all(
      Array.from({ length: sitting.clients }, (_, i) => client(server.url, `bench${i % sitting.projects}`, deadline, failures)),
    );
    const cpuTo = await cpuAt;
    const lifecycles = counts.reduce((a, b) => a + b, 0);
    const per = (k: keyof typeof cpuTo) => (cpuTo[k] - cpuFrom[k]) / lifecycles;
    const cpu = { postgres: per('postgres'), node: per('node'), clients: per('clients'), machine: per('machine') };
    if (why) await why.report(lifecycles);
    return {
      lifecycles,
      perSecond: lifecycles / SECONDS,
      ...(await latencies(url)),
      failures,
      counters: await nodeCounters(server.url),
      cpu,
    };
  } finally {
    server.proc.kill('SIGTERM');
    await new Promise((r) => (server.proc.exitCode !== null ? r(null) : server.proc.once('exit', r)));
  }
}

function pgbenchRate(): string {
  const r = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'tsx', 'dist', 'cli.mjs'), 'bench/enforcer.ts'], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, BENCH_ONLY: 'pgbench' },
  });
  const m = /uncontended.*pgbench, same statement\s+(\d+) transitions\/s/.exec(r.stdout);
  return m ? `${m[1]} transitions/s` : 'not measured (pgbench not on PATH?)';
}

async function main() {
  const targets: Target[] = [here()];
  if (values.compare) targets.unshift(checkout(values.compare, 'bench:control'));
  if (values.floor) targets.push({ ...here(), name: 'floor', entry: 'bench/floor-server.ts' });
  const work = mkdtempSync(join(tmpdir(), 'volstate-bench-control-'));
  chmodSync(work, 0o755);
  mkdirSync(join(work, 'pg'));
  const pg = await startEmbedded({
    dir: join(work, 'pg'),
    settings: values.why ? STATEMENT_SETTINGS : {},
  });
  const results = new Map<string, Map<string, Result[]>>();
  try {
    console.log(
      `volstate bench:control: one node, fake driver, embedded PostgreSQL; ${SECONDS} s per sitting, GET polled every ${POLL_MS} ms; Node ${process.version}`,
    );
    for (const sitting of SITTINGS) {
      for (let round = 0; round < ROUNDS; round++)
        for (const target of targets) {
          const r = await sit(pg, target, sitting, work);
          if (!results.has(sitting.name)) results.set(sitting.name, new Map());
          const runs = results.get(sitting.name)!;
          if (!runs.has(target.name)) runs.set(target.name, []);
          runs.get(target.name)!.push(r);
          const f = (p: [number, number]) => `${p[0].toFixed(1)} / ${p[1].toFixed(1)} ms`;
          console.log(
            `  ${sitting.name.padEnd(24)} ${target.name.padEnd(9)} create→available ${f(r.create)}  extend ${f(r.extend)}  delete ${f(r.delete)}  ${r.lifecycles} lifecycles (${r.perSecond.toFixed(1)}/s)  CPU per lifecycle ${r.cpu.machine.toFixed(1)} ms (PostgreSQL ${r.cpu.postgres.toFixed(1)}, node ${r.cpu.node.toFixed(1)}, clients ${r.cpu.clients.toFixed(1)})${r.counters}${r.failures.length ? `  ${r.failures.length} failures: ${r.failures[0]}` : ''}`,
          );
        }
    }
  } finally {
    await pg.stop();
    rmSync(work, { recursive: true, force: true });
  }
  console.log(`  (p50 / p95, server-side from the history)`);
  console.log(`pgbench, the volume machine's statement, 8 clients, uncontended: ${pgbenchRate()}`);
  const p50 = (runs: Result[]) => median(runs.map((x) => x.create[0]));
  const lifecycles = (runs: Result[]) => median(runs.map((x) => x.lifecycles));
  if (ROUNDS > 1) {
    console.log(`\nmedians of ${ROUNDS} rounds (create→available p50, lifecycles; the range in brackets):`);
    const range = (xs: number[], d: number) => `${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)}`;
    for (const [sitting, r] of results)
      for (const [target, runs] of r)
        console.log(
          `  ${sitting.padEnd(24)} ${target.padEnd(9)} ${p50(runs).toFixed(1)} ms (${range(
            runs.map((x) => x.create[0]),
            1,
          )}), ${lifecycles(runs)} lifecycles (${range(
            runs.map((x) => x.lifecycles),
            0,
          )})`,
        );
  }
  // Each target against the first (the --compare commit, or this tree when only --floor is given).
  if (targets.length > 1) {
    const [base, ...others] = targets.map((t) => t.name) as [string, ...string[]];
    console.log(`\nagainst ${base} (same run${ROUNDS > 1 ? `, medians of ${ROUNDS} alternating rounds` : ''}):`);
    for (const [sitting, r] of results) {
      const b = r.get(base)!;
      for (const other of others) {
        const a = r.get(other)!;
        console.log(
          `  ${sitting.padEnd(24)} ${other.padEnd(9)} ÷ ${base}: create→available p50 ${(p50(a) / p50(b)).toFixed(2)} ×, lifecycles ${(lifecycles(a) / lifecycles(b)).toFixed(2)} ×`,
        );
      }
    }
  }
  const failed = [...results.values()].some((r) => [...r.values()].some((runs) => runs.some((x) => x.failures.length > 0)));
  process.exit(failed ? 1 : 0);
}

await main();
