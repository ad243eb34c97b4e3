/**
 * The `workers` table: one row per live worker, heartbeating. A worker
 * whose heartbeat is older than the timeout is dead, and so is an owner
 * with no row at all (it stopped, or was purged): the rows they own are
 * recovered (src/worker/recovery.ts). Times are the database's own now(),
 * one clock for every node.
 */
import type { Executor as Exec } from './connect.ts';

export async function registerWorker(sql: Exec, id: string, host: string, pid: number): Promise<void> {
  await sql`
    INSERT INTO workers (id, host, pid) VALUES (${id}, ${host}, ${pid})
    ON CONFLICT (id) DO UPDATE SET heartbeat_at = now(), healthy_since = now()`;
}

/**
 * Beat; `gone` when our row is gone (we were judged dead and purged):
 * register again. `disabled`: an operator disabled the scheduler or the
 * volume service of our host (db/services.ts): claim no new work;
 * `backupDisabled`: its backup service: claim no backup-lane work.
 *
 * A beat that comes more than `timeoutMs / 2` after the previous one (the
 * database was away: restarted, failed over; or this process froze)
 * starts `healthy_since` again, on the database's clock. Whatever delayed
 * it delayed the others' beats too.
 */
export async function heartbeat(
  sql: Exec,
  id: string,
  timeoutMs: number,
): Promise<{ gone: boolean; disabled: boolean; backupDisabled: boolean }> {
  const [row] = await sql<{ disabled: boolean; backup_disabled: boolean }[]>`
    UPDATE workers w SET
      healthy_since = CASE WHEN w.heartbeat_at > now() - make_interval(secs => ${timeoutMs / 2000}) THEN w.healthy_since ELSE now() END,
      heartbeat_at = now()
    WHERE w.id = ${id}
    RETURNING EXISTS (SELECT 1 FROM services s WHERE s.host = w.host AND s.disabled AND s."binary" <> 'cinder-backup') AS disabled,
              EXISTS (SELECT 1 FROM services s WHERE s.host = w.host AND s.disabled AND s."binary" = 'cinder-backup') AS backup_disabled`;
  return row
    ? { gone: false, disabled: row.disabled, backupDisabled: row.backup_disabled }
    : { gone: true, disabled: false, backupDisabled: false };
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

/**
 * Rows owned by a worker that is not alive (no row, or no heartbeat for
 * `timeoutMs`), except `me`; none unless `me` is itself alive and has
 * been beating without a gap for a whole timeout, judged in this
 * statement on the database's clock. So a judgement is never made on the
 * clock of an outage, even by a statement that was sent before the
 * outage and ran after it (a pool holds queries while it reconnects).
 */
export async function rowsOfDeadOwners(sql: Exec, me: string, timeoutMs: number, limit = 200): Promise<OwnedRow[]> {
  return sql<OwnedRow[]>`
    SELECT r.resource_type, r.resource_id, r.owner, r.state FROM resource_states r
    WHERE r.owner IS NOT NULL AND r.owner <> ${me}
      AND NOT EXISTS (
        SELECT 1 FROM workers w
        WHERE w.id = r.owner AND w.heartbeat_at > now() - make_interval(secs => ${timeoutMs / 1000}))
      AND EXISTS (
        SELECT 1 FROM workers m
        WHERE m.id = ${me}
          AND m.heartbeat_at > now() - make_interval(secs => ${timeoutMs / 2000})
          AND m.healthy_since <= now() - make_interval(secs => ${timeoutMs / 1000}))
    LIMIT ${limit}`;
}

/** Rows `me` owns (the caller compares them with the steps it has in flight). */
export async function rowsOwnedBy(sql: Exec, me: string): Promise<OwnedRow[]> {
  return sql<OwnedRow[]>`SELECT resource_type, resource_id, owner, state FROM resource_states WHERE owner = ${me}`;
}

/**
 * Does `me` still own this row? (A step moves its row on as it goes, so
 * the state is not compared; recovery by another worker changes the owner.)
 */
export async function stillOwns(sql: Exec, me: string, row: { resource_type: string; resource_id: string }): Promise<boolean> {
  const [hit] = await sql`
    SELECT 1 AS one FROM resource_states
    WHERE resource_type = ${row.resource_type} AND resource_id = ${row.resource_id} AND owner = ${me}`;
  return hit !== undefined;
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
