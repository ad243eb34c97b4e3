/**
 * The `workers` table: one row per live worker, heartbeating. A worker
 * whose heartbeat is older than the timeout is dead, and so is an owner
 * with no row at all (it stopped, or was purged): the rows they own are
 * recovered (src/worker/recovery.ts). Times are the database's own now(),
 * one clock for every node.
 */
import type postgres from 'postgres';

type Exec = postgres.Sql | postgres.TransactionSql;

export async function registerWorker(sql: Exec, id: string, host: string, pid: number): Promise<void> {
  await sql`
    INSERT INTO workers (id, host, pid) VALUES (${id}, ${host}, ${pid})
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now()`;
}

/**
 * Beat; `gone` when our row is gone (we were judged dead and purged):
 * register again. `disabled`: an operator disabled a service of our host
 * (db/services.ts): claim no new work.
 */
export async function heartbeat(sql: Exec, id: string): Promise<{ gone: boolean; disabled: boolean }> {
  const [row] = await sql<{ disabled: boolean }[]>`
    UPDATE workers w SET heartbeat_at = now() WHERE w.id = ${id}
    RETURNING EXISTS (SELECT 1 FROM services s WHERE s.host = w.host AND s.disabled) AS disabled`;
  return row ? { gone: false, disabled: row.disabled } : { gone: true, disabled: false };
}

export async function deregisterWorker(sql: Exec, id: string): Promise<void> {
  await sql`DELETE FROM workers WHERE id = ${id}`;
}

export interface OwnedRow {
  resource_type: string;
  resource_id: string;
  owner: string;
  state: string;
}

/** Rows owned by a worker that is not alive (no row, or no heartbeat for `timeoutMs`), except `me`. */
export async function rowsOfDeadOwners(sql: Exec, me: string, timeoutMs: number, limit = 200): Promise<OwnedRow[]> {
  return sql<OwnedRow[]>`
    SELECT r.resource_type, r.resource_id, r.owner, r.state FROM resource_states r
    WHERE r.owner IS NOT NULL AND r.owner <> ${me}
      AND NOT EXISTS (
        SELECT 1 FROM workers w
        WHERE w.id = r.owner AND w.heartbeat_at > now() - make_interval(secs => ${timeoutMs / 1000}))
    LIMIT ${limit}`;
}

/** Rows `me` owns (the caller compares them with the steps it has in flight). */
export async function rowsOwnedBy(sql: Exec, me: string): Promise<OwnedRow[]> {
  return sql<OwnedRow[]>`SELECT resource_type, resource_id, owner, state FROM resource_states WHERE owner = ${me}`;
}

/** Forget dead workers that own nothing any more. */
export async function purgeDeadWorkers(sql: Exec, timeoutMs: number): Promise<number> {
  const rows = await sql`
    DELETE FROM workers w
    WHERE w.heartbeat_at < now() - make_interval(secs => ${timeoutMs / 1000})
      AND NOT EXISTS (SELECT 1 FROM resource_states r WHERE r.owner = w.id)
    RETURNING id`;
  return rows.length;
}
