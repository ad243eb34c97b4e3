/**
 * Volume transfers (db/schema.ts, `transfers`). A row is on offer while its
 * volume is `awaiting-transfer.offered` with the row's id in `operation`:
 * every read here joins the state row, so an offer ended by a reset or a
 * force delete is never shown, and nothing has to clean it up first.
 */
import type { TransferRow } from './schema.ts';
import type { VolumeState } from '../machines/volume.ts';
import type { Executor as Exec } from './connect.ts';


/** The volume's state while offered (machines/volume.ts). */
export const OFFERED = 'awaiting-transfer.offered' satisfies VolumeState;

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
