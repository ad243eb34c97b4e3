/**
 * `npm run bench:scale`: does an operation cost the same whatever the
 * number of rows in the database? The database is built up step by step
 * (seeded in bulk with SQL: the API would take days) and, at each step, the
 * same figures are measured over HTTP against a real node (API and worker
 * in this process, fake backend with no latency) and at the CAS:
 *
 *   show, list (first page; the page after a marker; `name=` filter; sort
 *   by name), create → available, extend → available, delete → gone (all
 *   p50 ms over HTTP, in one project of 1,000 live volumes), transitions
 *   per second of the enforcer (8 clients, the project's volumes), and the
 *   work queue's claim latency (a create's CREATE → SCHEDULE, from the
 *   history's timestamps); at the end, the purge's own rate.
 *
 * Steps: 1k live → + 100k live (other projects) → + 1M live → + 1M deleted
 * of the measured project (5 history rows each) → + history to ≥ 10M rows.
 * It prints the curve and, for every figure, largest step ÷ smallest
 * (goal ≤ 1.5). BENCH_SCALE=0.01 shrinks every step (a quick look);
 * BENCH_SLOW_MS=N with VOLSTATE_PG_LOG=1 logs every statement slower than N ms;
 * BENCH_STEPS=1 measures the first step only. BENCH_DRIVER=file runs the
 * file driver instead of the fake one, and every seeded live volume gets
 * its (sparse, empty) file: what the scheduler's capacity() costs as the
 * backend fills.
 *
 * The embedded PostgreSQL runs with synchronous_commit=off and
 * shared_buffers=1GB (the machine has 24 GiB): the figures are about how
 * queries scale, not the disk's flush latency.
 */
import { chmodSync, closeSync, mkdtempSync, openSync, rmSync, truncateSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { APP_DATABASE, connect, ensureDatabase, type Sql } from '../db/connect.ts';
import { startEmbedded } from '../db/servers/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { ensureHistoryPartitions, purge } from '../db/retention.ts';
import { build } from '../src/app.ts';
import { Coordination } from '../src/coordination/locks.ts';
import { FakeDriver } from '../src/drivers/fake.ts';
import { FileDriver } from '../src/drivers/file.ts';
import { Enforcer } from '../src/enforcer.ts';
import { Worker } from '../src/worker/worker.ts';

const SCALE = Number(process.env.BENCH_SCALE ?? 1);
const SAMPLES = Number(process.env.BENCH_SAMPLES ?? 100);
/** samples of the create, extend and delete round trips */
const ROUND_TRIPS = Number(process.env.BENCH_ROUND_TRIPS ?? 40);
const PROJECT = 'bench0000000000000000000000000000';
const HEADERS = { 'x-auth-token': `admin:${PROJECT}`, 'openstack-api-version': 'volume 3.70', 'content-type': 'application/json' };
const n = (x: number) => Math.max(1, Math.round(x * SCALE));

interface Step {
  name: string;
  /** seed before measuring */
  seed: (sql: Sql) => Promise<void>;
}

const FILE_DRIVER = process.env.BENCH_DRIVER === 'file';
/** the file driver's directory, when it runs */
let storage = '';

/** A live volume's file, as the file driver would have made it: 1 GiB, sparse. */
function seedFiles(ids: string[]) {
  for (const id of ids) {
    const path = join(storage, 'volumes', `${id}.img`);
    closeSync(openSync(path, 'w'));
    truncateSync(path, 1024 ** 3);
  }
}

/** Insert `count` volumes of `project(i)` with their state rows and `history` transitions each, in batches. */
async function seedVolumes(sql: Sql, count: number, opts: { project: (i: string) => string; deleted: boolean; history: number }) {
  const BATCH = 100_000;
  for (let done = 0; done < count; done += BATCH) {
    const k = Math.min(BATCH, count - done);
    const state = opts.deleted ? 'deleted' : 'available';
    const ids = await sql.unsafe<{ id: string }[]>(`
      WITH v AS (
        INSERT INTO volumes (id, project_id, user_id, name, created_at, updated_at, deleted_at)
        SELECT gen_random_uuid(), ${opts.project('i')}, 'seed', 'seed-' || i, now() - interval '40 days' + i * interval '1 ms', NULL,
               ${opts.deleted ? "now() - interval '35 days'" : 'NULL'}
        FROM generate_series(${done + 1}, ${done + k}) AS i
        RETURNING id
      ), s AS (
        INSERT INTO resource_states (resource_type, resource_id, state, previous_state, version, size, updated_at)
        SELECT 'volume', id, '${state}', NULL, ${opts.history}, 1, now() - interval '35 days' FROM v
      ), t AS (
        INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version, actor, at)
        SELECT 'volume', v.id, CASE WHEN h = 1 THEN NULL ELSE 'x' END, 'SEED', CASE WHEN h = ${opts.history} THEN '${state}' ELSE 'x' END, h, 'seed',
               now() - interval '35 days'
        FROM v, generate_series(1, ${opts.history}) AS h
      )
      SELECT id FROM v`);
    if (FILE_DRIVER && !opts.deleted) seedFiles(ids.map((r) => r.id));
  }
}

const STEPS: Step[] = [
  {
    name: '1k live (the project)',
    seed: (sql) => seedVolumes(sql, 1000, { project: () => `'${PROJECT}'`, deleted: false, history: 4 }),
  },
  {
    name: '+ 100k live, other projects',
    seed: (sql) => seedVolumes(sql, n(100_000), { project: (i) => `'p' || (${i} % 1000)`, deleted: false, history: 4 }),
  },
  {
    name: '+ 1M live (1.1M)',
    seed: (sql) => seedVolumes(sql, n(1_000_000), { project: (i) => `'p' || (${i} % 1000)`, deleted: false, history: 4 }),
  },
  {
    name: "+ 1M deleted of the project's",
    seed: (sql) => seedVolumes(sql, n(1_000_000), { project: () => `'${PROJECT}'`, deleted: true, history: 5 }),
  },
  {
    name: '+ deleted elsewhere: ≥ 10M history',
    seed: (sql) => seedVolumes(sql, n(1_000_000), { project: (i) => `'p' || (${i} % 1000)`, deleted: true, history: 5 }),
  },
];

// The API's answers, as JSON: a benchmark reads a few known fields of them.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Json = any;

const p50 = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function timed(fn: () => Promise<unknown>, samples = SAMPLES): Promise<number> {
  for (let i = 0; i < 3; i++) await fn(); // warm
  const out: number[] = [];
  for (let i = 0; i < samples; i++) {
    const t0 = performance.now();
    await fn();
    out.push(performance.now() - t0);
  }
  return p50(out);
}

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-bench-scale-'));
  chmodSync(dir, 0o755);
  const pg = await startEmbedded({
    dir,
    settings: {
      synchronous_commit: 'off',
      max_connections: '100',
      shared_buffers: '1GB',
      max_wal_size: '8GB',
      ...(process.env.BENCH_SLOW_MS ? { log_min_duration_statement: process.env.BENCH_SLOW_MS } : {}),
    },
  });
  let app: FastifyInstance | undefined;
  let worker: Worker | undefined;
  try {
    await ensureDatabase(pg.adminUrl, APP_DATABASE);
    const url = pg.urlFor(APP_DATABASE);
    await migrate(url);
    const sql = connect(url, { max: 20, name: 'bench-scale' });
    // The seeded history is 35 days old: its month gets a partition, so that the purge drops it whole.
    await ensureHistoryPartitions(sql, new Date(Date.now() - 35 * 86_400_000), 1);
    const enforcer = new Enforcer();
    storage = join(dir, 'storage');
    const driver = FILE_DRIVER
      ? new FileDriver({ dir: storage, coordination: new Coordination({ dir: join(dir, 'locks') }), capacityGb: 100_000_000 })
      : new FakeDriver();
    app = await build({ sql, enforcer, driver, auth: { mode: 'noauth', defaultProject: 'admin' }, logger: false });
    const base = await app.listen({ host: '127.0.0.1', port: 0 });
    worker = new Worker({ sql, enforcer, driver, concurrency: 16, pollMs: 1000 });
    await worker.start();
    const api = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${base}${path}`, { method, headers: HEADERS, body: body === undefined ? undefined : JSON.stringify(body) });
      const text = await r.text();
      return { status: r.status, body: text ? JSON.parse(text) : undefined };
    };
    const until = async (path: string, ok: (b: Json, status: number) => boolean) => {
      for (;;) {
        const r = await api('GET', path);
        if (ok(r.body, r.status)) return;
        await new Promise((res) => setTimeout(res, 1));
      }
    };
    console.log(
      `volstate scale benchmark: PostgreSQL (embedded, synchronous_commit=off), ${driver.name} driver, scale ${SCALE}, ${SAMPLES} samples per figure, Node ${process.version}`,
    );
    const results: Record<string, Record<string, number>> = {};
    for (const step of STEPS.slice(0, Number(process.env.BENCH_STEPS ?? STEPS.length))) {
      const t0 = performance.now();
      await step.seed(sql);
      await sql`VACUUM ANALYZE`;
      const [{ live, deleted, history }] = (await sql`
        SELECT (SELECT count(*) FROM volumes WHERE deleted_at IS NULL)::int AS live,
               (SELECT count(*) FROM volumes WHERE deleted_at IS NOT NULL)::int AS deleted,
               (SELECT count(*) FROM state_transitions)::int AS history`) as unknown as [
        { live: number; deleted: number; history: number },
      ];
      console.log(
        `  ${step.name}: seeded in ${((performance.now() - t0) / 1000).toFixed(0)} s (${live} live, ${deleted} deleted volumes, ${history} history rows)`,
      );
      if (driver instanceof FileDriver) {
        // The seeded files were made behind the driver's back, as another node's would be: its background recount finds them.
        const r0 = performance.now();
        await driver.recount();
        console.log(
          `    the file driver's recount (in the background, every minute): ${(performance.now() - r0).toFixed(0)} ms, ${(await driver.capacity()).freeGb} GiB free`,
        );
      }
      const mine = await sql<{ id: string; name: string }[]>`
        SELECT id, name FROM volumes WHERE project_id = ${PROJECT} AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 600`;
      const marker = mine[49]!.id;
      const r: Record<string, number> = {};
      let i = 0;
      r['show'] = await timed(() => api('GET', `/v3/volumes/${mine[i++ % mine.length]!.id}`));
      r['list, first page'] = await timed(() => api('GET', '/v3/volumes?limit=50'));
      r['list, after a marker'] = await timed(() => api('GET', `/v3/volumes?limit=50&marker=${marker}`));
      r['list, name='] = await timed(() => api('GET', `/v3/volumes?name=${mine[i++ % mine.length]!.name}`));
      r['list, sort=name'] = await timed(() => api('GET', '/v3/volumes?limit=50&sort=name:asc'));
      const made: string[] = [];
      r['create → available'] = await timed(async () => {
        const c = await api('POST', '/v3/volumes', { volume: { size: 1 } });
        made.push(c.body.volume.id);
        await until(`/v3/volumes/${c.body.volume.id}`, (b) => b?.volume?.status === 'available');
      }, ROUND_TRIPS);
      let e = 0;
      r['extend → available'] = await timed(async () => {
        const id = made[e++ % made.length]!;
        const size = (await api('GET', `/v3/volumes/${id}`)).body.volume.size as number;
        await api('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: size + 1 } });
        await until(`/v3/volumes/${id}`, (b) => b?.volume?.status === 'available' && b.volume.size === size + 1);
      }, ROUND_TRIPS);
      let d = 0;
      r['delete → gone'] = await timed(
        async () => {
          const id = made[d++]!;
          await api('DELETE', `/v3/volumes/${id}`);
          await until(`/v3/volumes/${id}`, (_b, status) => status === 404);
        },
        Math.min(ROUND_TRIPS, made.length - 3),
      );
      // The work queue: how long a new row waited for its first claim (history timestamps, server side).
      const [claim] = await sql<{ ms: number }[]>`
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM (s.at - c.at)) * 1000)::float8 AS ms
        FROM state_transitions c JOIN state_transitions s ON s.resource_type = c.resource_type AND s.resource_id = c.resource_id AND s.version = 2
        WHERE c.resource_type = 'volume' AND c.resource_id = ANY(${made}::uuid[]) AND c.version = 1`;
      r['claim latency'] = claim!.ms;
      // Create → available inside the server: the history's CREATE to its BACKEND_CREATED.
      const [inside] = await sql<{ ms: number }[]>`
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM (e.at - c.at)) * 1000)::float8 AS ms
        FROM state_transitions c JOIN state_transitions e ON e.resource_type = c.resource_type AND e.resource_id = c.resource_id AND e.event = 'BACKEND_CREATED'
        WHERE c.resource_type = 'volume' AND c.resource_id = ANY(${made}::uuid[]) AND c.version = 1`;
      r['create → available, server side'] = inside!.ms;
      // The enforcer alone: 8 clients, each its own volumes of the project, SNAPSHOT_BEGIN then READ_END.
      const rows = mine.slice(100, 500).map((v) => v.id);
      let count = 0;
      const stopAt = performance.now() + 3000;
      await Promise.all(
        Array.from({ length: 8 }, async (_, c) => {
          for (let k = 0; performance.now() < stopAt; k++) {
            const id = rows[c * 50 + ((k >> 1) % 50)]!;
            const event = k % 2 === 0 ? { type: 'SNAPSHOT_BEGIN' as const, force: false } : { type: 'READ_END' as const };
            const o = await enforcer.apply(sql, { type: 'volume', id }, event, { actor: 'bench' });
            if (o.ok) count++;
          }
        }),
      );
      r['CAS transitions/s'] = count / 3;
      results[step.name] = r;
      console.log(
        `    ${Object.entries(r)
          .map(([k, v]) => `${k} ${v.toFixed(1)}`)
          .join(', ')}`,
      );
    }
    // The purge's own rate: everything deleted (seeded 35 days ago) older than 30 days.
    const t0 = performance.now();
    const report = await purge(sql, new Date(Date.now() - 30 * 86_400_000));
    const secs = (performance.now() - t0) / 1000;
    const rows = report.rows.volumes + report.rows.snapshots + report.rows.attachments;

    const names = Object.keys(results);
    const figures = Object.keys(results[names[0]!]!);
    console.log(`\n| figure | ${names.join(' | ')} | last ÷ first |`);
    console.log(`| --- | ${names.map(() => '---:').join(' | ')} | ---: |`);
    for (const f of figures) {
      const vals = names.map((s) => results[s]![f]!);
      // A rate is better higher: its ratio is first ÷ last, so that > 1 always means slower.
      const ratio = f.endsWith('/s') ? vals[0]! / vals.at(-1)! : vals.at(-1)! / vals[0]!;
      console.log(
        `| ${f}${f.endsWith('/s') ? '' : ' (p50 ms)'} | ${vals.map((v) => v.toFixed(f.endsWith('/s') ? 0 : 1)).join(' | ')} | ${ratio.toFixed(2)} |`,
      );
    }
    console.log(
      `\npurge: ${rows} deleted volumes with their state rows in ${secs.toFixed(1)} s (${(rows / secs).toFixed(0)} rows/s), ${report.historyRows} history rows from the default partition, partitions dropped: ${report.partitions.join(', ') || 'none'}`,
    );
    await sql.end({ timeout: 5 });
  } finally {
    await worker?.stop();
    await app?.close();
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
