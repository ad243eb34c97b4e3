/**
 * `npm run bench:replication`: what synchronous replication costs, side
 * by side in one run, on one machine, with the same PostgreSQL 15 binaries
 * and settings (Debian's, started by Patroni, db/servers/patroni.ts):
 *
 *   - single: one PostgreSQL server, no standby;
 *   - async: a primary and an asynchronous standby (acknowledged commits
 *     can be lost with the primary: see the failover test);
 *   - sync: a primary and a synchronous standby (volstate's default: an
 *     acknowledged commit is on both).
 *
 * For each: the raw PostgreSQL limit (BENCH_CONNECTIONS connections each
 * committing one-row UPDATEs of its own row as fast as it can: commits/s
 * and commit latency), then volstate itself (the harness's mixed storm on
 * 3 nodes, BENCH_CLIENTS clients, no faults: accepted changes/s and the
 * create's latency). Ratios are against the single server of the same run.
 *
 * Both servers share this machine's 2 cores and one disk, so the standby's
 * own work (receive, flush, apply) competes with the primary's: on two
 * machines the cost is the network round trip plus the standby's flush.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { APP_DATABASE, ensureDatabase, sqlClient } from '../db/connect.ts';
import { startPatroni } from '../db/servers/patroni.ts';
import { runHarness } from '../src/harness/run.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 15);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 16);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 16);

const percentile = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : 0;
};

interface Result {
  commitsPerS: number;
  commitP50: number;
  acceptedPerS: number;
  createP50: number;
}

/** The raw limit: each connection commits one-row UPDATEs of its own row. */
async function rawCommits(url: string): Promise<{ perS: number; p50: number }> {
  const sql = sqlClient(url, { max: CONNECTIONS, onnotice: () => {} });
  try {
    await sql`CREATE TABLE IF NOT EXISTS bench_commits (id int PRIMARY KEY, v bigint NOT NULL)`;
    await sql`INSERT INTO bench_commits SELECT g, 0 FROM generate_series(1, ${CONNECTIONS}) g ON CONFLICT DO NOTHING`;
    const latencies: number[] = [];
    const until = Date.now() + SECONDS * 1000;
    await Promise.all(
      Array.from({ length: CONNECTIONS }, async (_, i) => {
        while (Date.now() < until) {
          const t0 = performance.now();
          await sql`UPDATE bench_commits SET v = v + 1 WHERE id = ${i + 1}`;
          latencies.push(performance.now() - t0);
        }
      }),
    );
    return { perS: latencies.length / SECONDS, p50: percentile(latencies, 50) };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

async function measure(name: string, members: number, synchronous: boolean): Promise<Result> {
  const dir = mkdtempSync(join(tmpdir(), `volstate-bench-${name}-`));
  const cluster = await startPatroni({ dir, members, synchronous, say: (l) => console.error(`${name}: ${l}`) });
  try {
    await ensureDatabase(cluster.adminUrl, APP_DATABASE);
    const raw = await rawCommits(cluster.url);
    console.error(`${name}: raw ${raw.perS.toFixed(0)} commits/s, p50 ${raw.p50.toFixed(2)} ms`);
    const run = await runHarness({
      scenario: 'mixed',
      nodes: 3,
      clients: CLIENTS,
      durationMs: SECONDS * 1000,
      seed: 1,
      faults: {},
      databaseUrl: cluster.url,
      token: 'admin:bench',
    });
    const ok = run.outcomes.filter((o) => o.status >= 200 && o.status < 300);
    const creates = ok.filter((o) => o.op === 'create').map((o) => o.ms);
    if (run.violations) throw new Error(`${name}: the history check found ${run.violations} violations`);
    const result = {
      commitsPerS: raw.perS,
      commitP50: raw.p50,
      acceptedPerS: ok.length / (run.durationMs / 1000),
      createP50: percentile(creates, 50),
    };
    console.error(`${name}: volstate ${result.acceptedPerS.toFixed(0)} accepted/s, create p50 ${result.createP50.toFixed(1)} ms`);
    return result;
  } finally {
    await cluster.stop();
    rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
  }
}

const single = await measure('single', 1, false);
const async_ = await measure('async', 2, false);
const sync = await measure('sync', 2, true);

const rows: [string, (r: Result) => number, number][] = [
  [`raw commits/s (${CONNECTIONS} connections)`, (r) => r.commitsPerS, 0],
  ['raw commit p50 ms', (r) => r.commitP50, 2],
  [`volstate accepted changes/s (3 nodes, ${CLIENTS} clients)`, (r) => r.acceptedPerS, 0],
  ['volstate create p50 ms', (r) => r.createP50, 1],
];
console.log(`\nreplication cost, one run, ${SECONDS} s per measure, PostgreSQL 15 under Patroni on this machine`);
console.log('| measure | single | async standby | sync standby | async ÷ single | sync ÷ single |');
console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
for (const [label, f, digits] of rows) {
  console.log(
    `| ${label} | ${f(single).toFixed(digits)} | ${f(async_).toFixed(digits)} | ${f(sync).toFixed(digits)} | ${(f(async_) / f(single)).toFixed(2)} | ${(f(sync) / f(single)).toFixed(2)} |`,
  );
}
