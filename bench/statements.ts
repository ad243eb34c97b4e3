/**
 * What a benchmark's window ran in PostgreSQL, per unit of work (a
 * lifecycle, a volume): `pg_stat_statements` of the current database,
 * reset at the window's start, by total execution time. Shared by
 * bench:control's `--why` and bench:nodes's `BENCH_WHY=1`.
 */
import type postgres from 'postgres';

/** The server settings it needs (PostgreSQL loads the extension at start). */
export const STATEMENT_SETTINGS: Readonly<Record<string, string>> = {
  shared_preload_libraries: 'pg_stat_statements',
  'pg_stat_statements.track': 'all',
  'pg_stat_statements.track_planning': 'on',
};

/** Start counting from now. */
export async function resetStatements(sql: postgres.Sql): Promise<void> {
  await sql`CREATE EXTENSION IF NOT EXISTS pg_stat_statements`;
  await sql`SELECT pg_stat_statements_reset()`;
}

/** Print the statements since the reset per `unit` (`count` of them made): totals, then the top BENCH_WHY_TOP (default `top`). */
export async function printStatements(sql: postgres.Sql, count: number, unit: string, top = 12): Promise<void> {
  const rows = await sql<{ calls: number; ms: number; plans: number; planMs: number; query: string }[]>`
    SELECT calls::int, total_exec_time AS ms, plans::int AS plans, total_plan_time AS "planMs", query FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY total_exec_time DESC`;
  const sum = (f: (r: (typeof rows)[number]) => number) => rows.reduce((a, r) => a + f(r), 0);
  const per = (n: number) => n / count;
  console.log(
    `    ${per(sum((r) => r.calls)).toFixed(1)} statements, ${per(sum((r) => Number(r.ms))).toFixed(2)} ms of their execution per ${unit}; ${per(sum((r) => r.plans)).toFixed(1)} plannings, ${per(sum((r) => Number(r.planMs))).toFixed(2)} ms; by total time:`,
  );
  for (const r of rows.slice(0, Number(process.env.BENCH_WHY_TOP ?? top)))
    console.log(
      `      ${per(r.calls).toFixed(2).padStart(6)}/${unit} ${(Number(r.ms) / r.calls).toFixed(3).padStart(7)} ms  plan ${(r.plans / r.calls).toFixed(2)} × ${(Number(r.planMs) / Math.max(1, r.plans)).toFixed(3)} ms  ${r.query.replace(/\s+/g, ' ').slice(0, 150)}`,
    );
}
