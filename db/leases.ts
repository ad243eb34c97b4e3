/**
 * Lease rows (see `leases` in db/schema.ts). Inserted in the transaction
 * whose CAS took the lease on the source; deleted with RETURNING, so that
 * of two transactions releasing the same holder only one gets the rows and
 * gives the source back its counter.
 */
import type { LeaseKind } from '../machines/resource.ts';
import type { Executor as Exec } from './connect.ts';

export interface Lease {
  source_type: string;
  source_id: string;
  kind: LeaseKind;
}

/**
 * Insert the holder's leases on the source; false when the holder already
 * held one of them (nothing is inserted then, and the transaction stays
 * usable: the caller refuses and rolls back the source's CAS with it).
 */
export async function insertLeases(
  tx: Exec,
  source: { type: string; id: string },
  holder: { type: string; id: string },
  kinds: readonly LeaseKind[],
): Promise<boolean> {
  const rows = kinds.map((kind) => ({
    source_type: source.type,
    source_id: source.id,
    holder_type: holder.type,
    holder_id: holder.id,
    kind,
  }));
  const inserted = await tx`INSERT INTO leases ${tx(rows)} ON CONFLICT DO NOTHING RETURNING kind`;
  return inserted.length === rows.length;
}

/** Take away the holder's leases of these kinds; returns them, sources in a fixed order. */
export async function takeLeases(tx: Exec, holder: { type: string; id: string }, kinds: readonly LeaseKind[]): Promise<Lease[]> {
  const rows = await tx<Lease[]>`
    DELETE FROM leases
    WHERE holder_type = ${holder.type} AND holder_id = ${holder.id} AND kind = ANY(${kinds as string[]})
    RETURNING source_type, source_id, kind`;
  return inReleaseOrder(rows);
}

/** Release in one global order (by source), so two releasers cannot deadlock. */
export function inReleaseOrder(leases: readonly Lease[]): Lease[] {
  return [...leases].sort((a, b) => `${a.source_type}:${a.source_id}`.localeCompare(`${b.source_type}:${b.source_id}`));
}

export async function leasesOf(sql: Exec, holder: { type: string; id: string }): Promise<Lease[]> {
  return sql<Lease[]>`SELECT source_type, source_id, kind FROM leases WHERE holder_type = ${holder.type} AND holder_id = ${holder.id}`;
}
