/**
 * What a node's readiness rests on, read from the database: are the
 * migrations this code expects applied, and how old is a worker's last
 * heartbeat (by the database's clock, as every liveness judgement here).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS } from './migrate.ts';
import type { Executor as Exec } from './connect.ts';

/** How many migrations this code ships (drizzle-kit's journal). */
export function shippedMigrations(): number {
  const journal = JSON.parse(readFileSync(join(MIGRATIONS, 'meta', '_journal.json'), 'utf8')) as { entries: unknown[] };
  return journal.entries.length;
}

/** How many migrations the database has applied (drizzle's own table; 0 when none ever ran). */
export async function appliedMigrations(sql: Exec): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    SELECT CASE WHEN to_regclass('drizzle.__drizzle_migrations') IS NULL THEN 0
                ELSE (SELECT count(*)::int FROM drizzle.__drizzle_migrations) END AS n`;
  return row!.n;
}

/** Seconds since the worker's last heartbeat; undefined when it has no row (not registered, or judged dead and purged). */
export async function heartbeatAge(sql: Exec, workerId: string): Promise<number | undefined> {
  const [row] = await sql<
    { age: number }[]
  >`SELECT extract(epoch FROM now() - heartbeat_at)::float8 AS age FROM workers WHERE id = ${workerId}`;
  return row?.age;
}
