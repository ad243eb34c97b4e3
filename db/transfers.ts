/**
 * Volume transfers (db/schema.ts, `transfers`). A row is on offer while its
 * volume is `awaiting-transfer.offered` with the row's id in `operation`:
 * every read here joins the state row, so an offer ended by a reset or a
 * force delete is never shown, and nothing has to clean it up first.
 */
import type { TransferRow } from './schema.ts';
import type { SnapshotState } from '../machines/snapshot.ts';
import type { VolumeState } from '../machines/volume.ts';
import type { Executor as Exec } from './connect.ts';

/** The volume's state while offered (machines/volume.ts). */
export const OFFERED = 'awaiting-transfer.offered' satisfies VolumeState;

/** A snapshot that can go with its volume (machines/snapshot.ts). */
const SNAPSHOT_AVAILABLE = 'available' satisfies SnapshotState;

function onOffer(sql: Exec) {
  return sql`JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = t.volume_id
    AND s.state = ${OFFERED} AND s.operation ->> 'transfer_id' = t.id::text`;
}

/** Insert an offer; rows of earlier offers of the volume (ended by a reset) go in the same statement's transaction. */
export async function insertTransfer(tx: Exec, row: Omit<TransferRow, 'created_at'>): Promise<TransferRow> {
  await tx`DELETE FROM transfers WHERE volume_id = ${row.volume_id}`;
  const [inserted] = await tx<TransferRow[]>`INSERT INTO transfers ${tx(row)} RETURNING *`;
  return inserted!;
}

/** An offer by id: any project's (`projectId` undefined, for accept and admins), or one project's. */
export async function findTransfer(sql: Exec, id: string, projectId: string | undefined): Promise<TransferRow | undefined> {
  const [row] = await sql<TransferRow[]>`
    SELECT t.* FROM transfers t ${onOffer(sql)}
    WHERE t.id = ${id} ${projectId === undefined ? sql`` : sql`AND t.source_project_id = ${projectId}`}`;
  return row;
}

/** The offers of a project (or of all, for an admin with all_tenants), oldest first. */
export async function listTransfers(sql: Exec, projectId: string | undefined, limit: number): Promise<TransferRow[]> {
  return sql<TransferRow[]>`
    SELECT t.* FROM transfers t ${onOffer(sql)}
    ${projectId === undefined ? sql`` : sql`WHERE t.source_project_id = ${projectId}`}
    ORDER BY t.created_at, t.id LIMIT ${limit}`;
}

export async function removeTransfer(tx: Exec, id: string): Promise<void> {
  await tx`DELETE FROM transfers WHERE id = ${id}`;
}

/**
 * The first (by id) live snapshot of the volume that is not available,
 * with its state; undefined when every one is. Read under the volume's
 * lock, it stays true: no snapshot can start while the volume is offered.
 */
export async function busySnapshot(tx: Exec, volumeId: string): Promise<{ id: string; state: string } | undefined> {
  const [busy] = await tx<{ id: string; state: string }[]>`
    SELECT n.id, s.state FROM snapshots n JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = n.id
    WHERE n.volume_id = ${volumeId} AND n.deleted_at IS NULL AND s.state <> ${SNAPSHOT_AVAILABLE} ORDER BY n.id LIMIT 1`;
  return busy;
}

/** What an accept moves: the volume's owner and type, and (unless `withSnapshots` is false) its live snapshots' sizes and types. */
export async function transferred(
  tx: Exec,
  volumeId: string,
  withSnapshots: boolean,
): Promise<{ projectId: string; volumeTypeId: string | null; snapshots: { id: string; size: number; volume_type_id: string | null }[] }> {
  const [volume] = await tx<
    { project_id: string; volume_type_id: string | null }[]
  >`SELECT project_id, volume_type_id FROM volumes WHERE id = ${volumeId}`;
  const snapshots = withSnapshots
    ? await tx<{ id: string; size: number; volume_type_id: string | null }[]>`
        SELECT n.id, s.size, n.volume_type_id FROM snapshots n JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = n.id
        WHERE n.volume_id = ${volumeId} AND n.deleted_at IS NULL`
    : [];
  return { projectId: volume!.project_id, volumeTypeId: volume!.volume_type_id, snapshots };
}

/** Give the volume and these snapshots to `projectId`, created by `userId` as far as the API shows. */
export async function changeOwner(tx: Exec, volumeId: string, snapshotIds: string[], projectId: string, userId: string): Promise<void> {
  await tx`UPDATE volumes SET project_id = ${projectId}, user_id = ${userId}, updated_at = now() WHERE id = ${volumeId}`;
  if (snapshotIds.length > 0) {
    await tx`UPDATE snapshots SET project_id = ${projectId}, user_id = ${userId}, updated_at = now() WHERE id = ANY(${snapshotIds}::uuid[])`;
  }
}
