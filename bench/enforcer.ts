/**
 * `npm run bench`: transitions per second of the enforcer, side by side in
 * one run with
 *   - pgbench running the very same statement (the raw PostgreSQL limit;
 *     Debian's pgbench, when on PATH),
 *   - the same statement from raw postgres.js (what the enforcer's own
 *     JavaScript costs),
 *   - SELECT ... FOR UPDATE, decide in JS, UPDATE + history, in a transaction,
 *   - pg_advisory_xact_lock, plain read, decide, UPDATE + history,
 * on two workloads: 8 clients on 100 rows (each client its own rows:
 * uncontended) and 8 clients on 1 row (contended). Each client alternates
 * SNAPSHOT_BEGIN (one more reader and dependent) and READ_END (one fewer
 * reader) on its row: two real transitions with guards, effects, a
 * version bump and a history row, which always succeed, so every variant
 * does the same work.
 *
 * The embedded PostgreSQL runs with synchronous_commit=off for every
 * variant alike, so the numbers measure round trips and CPU, not this
 * machine's disk flush latency. Speed is measured here, never in tests.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { FIXED_PARAMS } from '../db/cas.ts';
import { APP_DATABASE, connect, ensureDatabase, type Sql } from '../db/connect.ts';
import { startEmbedded } from '../db/servers/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { decide } from '../machines/decide.ts';
import { MODELS } from '../machines/index.ts';
import { contextOf, Enforcer, type StateRow } from '../src/enforcer.ts';

const CLIENTS = 8;
const ROWS = 100;
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const WARMUP_MS = 1000;
const model = MODELS.volume;
const enforcer = new Enforcer();

const uuid = (n: number) => `00000000-0000-4000-8000-${String(n).padStart(12, '0')}`;
type Event = 'SNAPSHOT_BEGIN' | 'READ_END';
const CYCLE: Event[] = ['SNAPSHOT_BEGIN', 'READ_END'];
/** each event's parameters, as the API would send them */
const PAYLOAD: Record<Event, Record<string, unknown>> = { SNAPSHOT_BEGIN: { force: false }, READ_END: {} };
/** the values of a statement's parameters after the fixed ones */
const eventParams = (event: Event) => enforcer.statement('volume', event).params.map((p) => PAYLOAD[event][p] ?? null);

/** Rows client `c` works on. */
const rowsOf = (contended: boolean, c: number) =>
  contended ? [0] : Array.from({ length: (ROWS / CLIENTS) | 0 }, (_, i) => c * ((ROWS / CLIENTS) | 0) + i);

type Transition = (sql: Sql, id: string, event: Event, n: number) => Promise<void>;

async function setup(sql: Sql) {
  await sql`TRUNCATE resource_states, state_transitions`;
  const rows = Array.from({ length: ROWS }, (_, i) => ({
    resource_type: 'volume',
    resource_id: uuid(i),
    state: model.index.leaves.find(
      (s) => !model.index.isTransient(s) && !model.index.isFinal(s) && model.index.candidates(s, 'SNAPSHOT_BEGIN').length,
    )!,
    size: 1,
  }));
  await sql`INSERT INTO resource_states ${sql(rows)}`;
  await sql`VACUUM ANALYZE resource_states`;
}

/** Run `transition` from 8 clients for SECONDS; returns transitions per second. */
async function run(url: string, contended: boolean, transition: Transition): Promise<number> {
  const clients = Array.from({ length: CLIENTS }, () => connect(url, { max: 1, name: 'bench' }));
  await Promise.all(clients.map((c) => c`SELECT 1`));
  let counting = false;
  let count = 0;
  let stop = false;
  const loops = clients.map(async (sql, c) => {
    const rows = rowsOf(contended, c);
    for (let n = 0; !stop; n++) {
      const id = uuid(rows[(n >> 1) % rows.length]!);
      await transition(sql, id, CYCLE[n % 2]!, n);
      if (counting) count++;
    }
  });
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  counting = true;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const elapsed = (performance.now() - start) / 1000;
  const done = count;
  stop = true;
  await Promise.all(loops);
  await Promise.all(clients.map((c) => c.end()));
  return done / elapsed;
}

/**
 * Group commit (src/group-commit.ts): what a node does with many requests
 * in flight at once. GROUPED_CALLERS callers share one pool of CLIENTS
 * connections, each alternating the cycle on its own row (uncontended) or
 * all on row 0 (contended: a row goes at most once per statement, so their
 * events go one statement after another); the transitions of one turn of
 * the event loop go as one statement per event.
 */
const GROUPED_CALLERS = 64;
async function runGrouped(url: string, contended: boolean): Promise<string> {
  const pool = connect(url, { max: CLIENTS, name: 'bench-grouped' });
  const grouped = new Enforcer();
  grouped.groupCommit(pool);
  await Promise.all(Array.from({ length: CLIENTS }, () => pool`SELECT 1`));
  let counting = false;
  let count = 0;
  let stop = false;
  const loops = Array.from({ length: GROUPED_CALLERS }, async (_, c) => {
    const id = uuid(contended ? 0 : c);
    for (let n = 0; !stop; n++) {
      const event = CYCLE[n % 2]!;
      const r = await grouped.apply(pool, { type: 'volume', id }, { type: event, ...PAYLOAD[event] } as never, {
        actor: 'bench',
        requestId: requestId(),
      });
      if (!r.ok) throw new Error(`group commit refused ${event}: ${r.kind}`);
      if (counting) count++;
    }
  });
  await new Promise((r) => setTimeout(r, WARMUP_MS));
  const before = { ...grouped.batches };
  counting = true;
  const start = performance.now();
  await new Promise((r) => setTimeout(r, SECONDS * 1000));
  const elapsed = (performance.now() - start) / 1000;
  const done = count;
  const rows = grouped.batches.rows - before.rows;
  const statements = grouped.batches.statements - before.statements;
  stop = true;
  await Promise.all(loops);
  await pool.end();
  // A number first, for the ratios; then how full the statements were.
  return `${(done / elapsed).toFixed(0)} (${statements ? (rows / statements).toFixed(1) : 0} rows per grouped statement, ${Math.max(0, done - rows)} alone)`;
}

/** Every transition carries a request id of its own, as an API request's does (the history indexes it). */
const requestId = () => `req-${randomUUID()}`;

const viaEnforcer: Transition = async (sql, id, event) => {
  const r = await enforcer.apply(sql, { type: 'volume', id }, { type: event, ...PAYLOAD[event] } as never, {
    actor: 'bench',
    requestId: requestId(),
  });
  if (!r.ok) throw new Error(`enforcer refused ${event}: ${r.kind}`);
};

const viaRawStatement: Transition = async (sql, id, event) => {
  const stmt = enforcer.statement('volume', event);
  const rows = await sql.unsafe(stmt.text, ['volume', id, 'bench', requestId(), null, null, ...eventParams(event)] as never[], {
    prepare: true,
  });
  if (!rows[0]?.applied) throw new Error(`raw statement refused ${event}`);
};

/** Lock-based: read under a lock, decide in JS, write the row and the history. */
function lockBased(lock: 'for-update' | 'advisory'): Transition {
  return async (sql, id, event) => {
    await sql.begin(async (tx) => {
      if (lock === 'advisory') await tx`SELECT pg_advisory_xact_lock(hashtext(${id}))`;
      const [row] = (lock === 'for-update'
        ? await tx`SELECT * FROM resource_states WHERE resource_type = 'volume' AND resource_id = ${id} FOR UPDATE`
        : await tx`SELECT * FROM resource_states WHERE resource_type = 'volume' AND resource_id = ${id}`) as unknown as StateRow[];
      const d = decide(model, { state: row!.state, context: contextOf(model, row!) }, { type: event, ...PAYLOAD[event] });
      if (!d.ok) throw new Error(`${lock} refused ${event}`);
      const c = d.context as { readers: number; dependents: number };
      const [moved] = await tx`
        UPDATE resource_states SET state = ${d.to}, readers = ${c.readers}, dependents = ${c.dependents},
               previous_state = state, version = version + 1, updated_at = now()
        WHERE resource_type = 'volume' AND resource_id = ${id} RETURNING version`;
      await tx`INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version, actor, request_id)
               VALUES ('volume', ${id}, ${row!.state}, ${event}, ${d.to}, ${moved!.version}, 'bench', ${requestId()})`;
    });
  };
}

/** The enforcer's statement as a pgbench script: same text, $n → pgbench variables. */
function pgbenchScript(contended: boolean): string {
  const perClient = (ROWS / CLIENTS) | 0;
  const row = contended ? '\\set row 0' : `\\set row (:client_id % ${CLIENTS}) * ${perClient} + random(0, ${perClient - 1})`;
  const literal = (v: unknown) => (v === null ? 'NULL' : typeof v === 'string' ? `'${v.replaceAll("'", "''")}'` : JSON.stringify(v));
  const bind = (text: string, event: Event) =>
    text
      .replaceAll('$1::text', "'volume'::text")
      .replaceAll('$2::uuid', "('00000000-0000-4000-8000-' || lpad(:row::text, 12, '0'))::uuid")
      .replaceAll('$3::text', "'bench'::text")
      .replaceAll('$4::text', "('req-' || md5(random()::text))::text")
      .replace(/\$[5-6]::(text|int)/g, 'NULL::$1')
      .replace(/\$(\d+)::/g, (_m, n: string) => `${literal(eventParams(event)[Number(n) - FIXED_PARAMS.length - 1])}::`);
  if (FIXED_PARAMS.length !== 6) throw new Error('update the pgbench binding for the new fixed parameters');
  return [row, ...CYCLE.map((e) => `${bind(enforcer.statement('volume', e).text, e).replaceAll('\n', ' ')};`)].join('\n') + '\n';
}

function pgbench(url: string, contended: boolean): number | string {
  if (spawnSync('pgbench', ['--version']).status !== 0) return 'pgbench not on PATH (apt-get install postgresql-client)';
  const dir = mkdtempSync(join(tmpdir(), 'volstate-bench-'));
  try {
    const script = join(dir, 'cas.sql');
    writeFileSync(script, pgbenchScript(contended));
    const out = execFileSync(
      'pgbench',
      ['-n', '-M', 'prepared', '-f', script, '-c', String(CLIENTS), '-j', '2', '-T', String(SECONDS), url],
      {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    const failed = /number of failed transactions: (\d+)/.exec(out);
    if (failed && Number(failed[1]) > 0) return `pgbench: ${failed[1]} failed transactions`;
    const tps = /tps = ([\d.]+) \(without initial connection time\)/.exec(out);
    if (!tps) return `pgbench output not understood: ${out.slice(-300)}`;
    return Number(tps[1]) * CYCLE.length; // one script run = one transition per event of the cycle
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-bench-pg-'));
  chmodSync(dir, 0o755);
  const pg = await startEmbedded({ dir, settings: { synchronous_commit: 'off', max_connections: '100' } });
  try {
    await ensureDatabase(pg.adminUrl, APP_DATABASE);
    const url = pg.urlFor(APP_DATABASE);
    await migrate(url);
    const admin = connect(url, { max: 1 });
    const version = (await admin`SHOW server_version`)[0]!.server_version as string;
    console.log(
      `volstate enforcer benchmark: PostgreSQL ${version} (embedded, synchronous_commit=off), ${CLIENTS} clients, ${SECONDS}s per run, Node ${process.version}`,
    );
    const results: Record<string, Record<string, number | string>> = {};
    // BENCH_ONLY=pgbench: the physical anchor alone (bench/control.ts prints it beside its own figures).
    const only = process.env.BENCH_ONLY;
    for (const contended of only === 'pgbench' ? [false] : [false, true]) {
      const workload = contended ? 'contended (8 clients, 1 row)' : `uncontended (8 clients, ${ROWS} rows)`;
      results[workload] = {};
      const variants: [string, () => Promise<number | string>][] = [
        ['pgbench, same statement', async () => pgbench(url, contended)],
        ['enforcer', () => run(url, contended, viaEnforcer)],
        [`enforcer, group commit (${GROUPED_CALLERS} callers)`, () => runGrouped(url, contended)],
        ['raw postgres.js, same statement', () => run(url, contended, viaRawStatement)],
        ['SELECT FOR UPDATE + UPDATE', () => run(url, contended, lockBased('for-update'))],
        ['pg_advisory_xact_lock + RMW', () => run(url, contended, lockBased('advisory'))],
      ];
      for (const [name, variant] of variants) {
        if (only === 'pgbench' && !name.startsWith('pgbench')) continue;
        await setup(admin);
        const value = await variant();
        results[workload][name] = value;
        const rate = typeof value === 'number' ? value : /^\d+ \(/.test(value) ? Number(value.split(' ')[0]) : undefined;
        if (rate !== undefined) results[workload][name] = rate;
        const note = typeof value === 'string' && rate !== undefined ? ` ${value.slice(value.indexOf('('))}` : '';
        console.log(
          `  ${workload.padEnd(30)} ${name.padEnd(40)} ${rate !== undefined ? `${rate.toFixed(0).padStart(8)} transitions/s${note}` : value}`,
        );
      }
    }
    await admin.end();
    console.log('\nratios (same run):');
    let last = '';
    for (const [workload, r] of Object.entries(results)) {
      const e = r.enforcer as number;
      const ratio = (name: string) => (typeof r[name] === 'number' ? (e / r[name]).toFixed(2) : 'n/a');
      const g = r[`enforcer, group commit (${GROUPED_CALLERS} callers)`];
      const grouped =
        typeof g === 'number' && typeof r['pgbench, same statement'] === 'number' ? (g / r['pgbench, same statement']).toFixed(2) : 'n/a';
      console.log(
        `  ${workload}: enforcer/raw postgres.js ${ratio('raw postgres.js, same statement')}, enforcer/FOR UPDATE ${ratio('SELECT FOR UPDATE + UPDATE')}, enforcer/advisory ${ratio('pg_advisory_xact_lock + RMW')}, enforcer/pgbench ${ratio('pgbench, same statement')}, group commit/pgbench ${grouped}`,
      );
      if (workload.startsWith('uncontended')) last = `${ratio('pgbench, same statement')} (group commit: ${grouped})`;
    }
    console.log(`enforcer/pgbench: ${last}`);
  } finally {
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
