/**
 * The waiters queue (see `waiters` in db/schema.ts): registration, the
 * head of a resource's queue, renewal, and leaving it (which wakes the
 * next).
 */
import { STATE_CHANNEL } from './cas.ts';
import type { Executor as Exec } from './connect.ts';

export interface WaitRef {
  type: string;
  id: string;
}

/** How long a waiter stays at the head of its queue without its process renewing it. */
export const WAITER_LEASE_MS = 3000;

const lease = () => `${WAITER_LEASE_MS} milliseconds`;

export async function joinQueue(sql: Exec, ref: WaitRef, seconds: number): Promise<number> {
  const [row] = await sql<{ id: number }[]>`
    INSERT INTO waiters (resource_type, resource_id, deadline, alive_until)
    SELECT ${ref.type}, ${ref.id}, d, least(d, now() + ${lease()}::interval)
    FROM (SELECT now() + make_interval(secs => ${seconds}) AS d) AS t
    RETURNING id`;
  return Number(row!.id);
}

/**
 * The oldest live waiter of the resource, and the state its row is in now
 * (undefined: no row), in one statement: a waiter at the head tries again
 * only if its event may move the row from there (src/waiting.ts).
 */
export async function headOf(sql: Exec, ref: WaitRef): Promise<{ head: number | undefined; state: string | undefined }> {
  const [row] = await sql<{ head: string | null; state: string | null }[]>`
    SELECT
      (SELECT id FROM waiters WHERE resource_type = ${ref.type} AND resource_id = ${ref.id} AND alive_until > now()
       ORDER BY id LIMIT 1) AS head,
      (SELECT state FROM resource_states WHERE resource_type = ${ref.type} AND resource_id = ${ref.id}::uuid) AS state`;
  return { head: row!.head === null ? undefined : Number(row!.head), state: row!.state ?? undefined };
}

/** Keep this process's waiters alive for another lease (never past their deadline). */
export async function renewWaiters(sql: Exec, ids: number[]): Promise<void> {
  if (ids.length === 0) return;
  await sql`
    UPDATE waiters SET alive_until = least(deadline, now() + ${lease()}::interval)
    WHERE id = ANY(${ids}::bigint[])`;
}

/** Leave the queue and wake the next waiter of the resource. */
export async function leaveQueue(sql: Exec, ref: WaitRef, id: number): Promise<void> {
  await sql`
    WITH gone AS (DELETE FROM waiters WHERE id = ${id})
    SELECT pg_notify(${STATE_CHANNEL}, ${`${ref.type}:${ref.id}`})`;
}

/** Forget waiters no process renews any more (crashed processes). */
export async function purgeExpiredWaiters(sql: Exec): Promise<number> {
  return (await sql`DELETE FROM waiters WHERE alive_until < now() - interval '1 minute' RETURNING id`).length;
}

/** How many requests wait for a resource now, on every node. */
export async function waiterCount(sql: Exec): Promise<number> {
  const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM waiters`;
  return row!.n;
}
