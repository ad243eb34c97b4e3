/**
 * The volume data row as the worker steps read and write it
 * (src/worker/steps.ts): where a create comes from, what scheduling needs,
 * the backend it chose, the type a retype gives.
 */
import type { Executor as Exec } from './connect.ts';

export interface CreateData {
  snapshot_id: string | null;
  source_volid: string | null;
  /** restored into the new volume once it is created */
  backup_id: string | null;
  backend: string | null;
}

export interface SchedulingData {
  /** the volume type's extra specs (null: no type) */
  specs: Record<string, string> | null;
  /** the backend of the source volume, or of the snapshot's volume */
  source_backend: string | null;
  /** a clone or a volume from a snapshot */
  from_source: boolean;
  snapshot_id: string | null;
  source_volid: string | null;
  /** a volume from a backup goes wherever its type fits (the backup is in the store, not on a backend) */
  backup_id: string | null;
}

/** Where a volume's data comes from and the backend it is on; undefined if it has no data row. */
export async function createData(sql: Exec, id: string): Promise<CreateData | undefined> {
  const [data] = await sql<CreateData[]>`SELECT snapshot_id, source_volid, backup_id, backend FROM volumes WHERE id = ${id}`;
  return data;
}

/** What choosing a backend for the volume needs; undefined if it has no data row. */
export async function schedulingData(sql: Exec, id: string): Promise<SchedulingData | undefined> {
  const [data] = await sql<SchedulingData[]>`
    SELECT t.extra_specs AS specs,
      COALESCE(src.backend, snapvol.backend) AS source_backend,
      (v.source_volid IS NOT NULL OR v.snapshot_id IS NOT NULL) AS from_source, v.snapshot_id, v.source_volid, v.backup_id
    FROM volumes v
    LEFT JOIN volume_types t ON t.id = v.volume_type_id
    LEFT JOIN volumes src ON src.id = v.source_volid
    LEFT JOIN snapshots sn ON sn.id = v.snapshot_id
    LEFT JOIN volumes snapvol ON snapvol.id = sn.volume_id
    WHERE v.id = ${id}`;
  return data;
}

/** The volume's type after a retype. */
export async function setVolumeType(tx: Exec, id: string, type: { id: string; name: string; encrypted: boolean }): Promise<void> {
  await tx`UPDATE volumes SET volume_type_id = ${type.id}, volume_type = ${type.name}, encrypted = ${type.encrypted}, updated_at = now() WHERE id = ${id}`;
}
