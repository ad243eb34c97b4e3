/**
 * The waiters queue (see `waiters` in db/schema.ts): registration, the
 * head of a resource's queue, and leaving it (which wakes the next).
 */
import type postgres from 'postgres';
import { STATE_CHANNEL } from './cas.ts';

type Exec = postgres.Sql | postgres.TransactionSql;

export interface WaitRef {
  type: string;
  id: string;
}

export async function joinQueue(sql: Exec, ref: WaitRef, seconds: number): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    INSERT INTO waiters (resource_type, resource_id, expires_at)
    VALUES (${ref.type}, ${ref.id}, now() + make_interval(secs => ${seconds}))
    RETURNING id`;
  return Number(row!.id);
}

/** The oldest live waiter of the resource. */
export async function headOf(sql: Exec, ref: WaitRef): Promise<number | undefined> {
  const [row] = await sql<{ id: number }[]>`
    SELECT id FROM waiters WHERE resource_type = ${ref.type} AND resource_id = ${ref.id} AND expires_at > now()
    ORDER BY id LIMIT 1`;
  return row ? Number(row.id) : undefined;
}

/** Leave the queue and wake the next waiter of the resource. */
export async function leaveQueue(sql: Exec, ref: WaitRef, id: number): Promise<void> {
  await sql`
    WITH gone AS (DELETE FROM waiters WHERE id = ${id})
    SELECT pg_notify(${STATE_CHANNEL}, ${`${ref.type}:${ref.id}`})`;
}

/** Forget waiters whose time ran out (crashed processes). */
export async function purgeExpiredWaiters(sql: Exec): Promise<number> {
  return (await sql`DELETE FROM waiters WHERE expires_at < now() - interval '1 minute' RETURNING id`).length;
}
