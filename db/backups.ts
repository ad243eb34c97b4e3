/**
 * What the backup steps read and record (src/worker/steps.ts). A step's
 * writes to the data row are made only while its worker owns the backup's
 * state row (the statement checks it). (A volume's backend is written by
 * its SCHEDULED transition itself: the event's `data`, machines/volume.ts.)
 */
import type { BackupIdentity, BackupLocation } from '../src/backup/posix.ts';
import { defaultContainer, objectPrefix } from '../src/backup/posix.ts';
import type { Executor as Exec } from './connect.ts';

export interface BackupData {
  identity: BackupIdentity;
  snapshotId: string | null;
  /** the backend of the volume it reads (null: the default one) */
  backend: string | null;
}

/** The backup, with where its objects go (the container and prefix Cinder's posix driver would choose, if none is set). */
export async function backupData(sql: Exec, id: string): Promise<BackupData | undefined> {
  const [b] = await sql<
    {
      id: string;
      volume_id: string;
      snapshot_id: string | null;
      parent_id: string | null;
      name: string | null;
      description: string | null;
      container: string | null;
      service_metadata: string | null;
      created_at: Date;
      backend: string | null;
    }[]
  >`
    SELECT b.id, b.volume_id, b.snapshot_id, b.parent_id, b.name, b.description, b.container, b.service_metadata, b.created_at,
           (SELECT v.backend FROM volumes v WHERE v.id = b.volume_id) AS backend
    FROM backups b WHERE b.id = ${id}`;
  if (!b) return undefined;
  return {
    identity: {
      id: b.id,
      volumeId: b.volume_id,
      name: b.name,
      description: b.description,
      createdAt: b.created_at,
      parentId: b.parent_id,
      container: b.container ?? defaultContainer(b.id),
      prefix: b.service_metadata ?? objectPrefix(b.volume_id, b.id, b.created_at),
    },
    snapshotId: b.snapshot_id,
    backend: b.backend,
  };
}

/** The chain a restore of `id` applies: its full backup first, then each increment, ending with `id`. */
export async function restoreChain(sql: Exec, id: string): Promise<BackupLocation[]> {
  const rows = await sql<
    { id: string; volume_id: string; container: string | null; service_metadata: string | null; created_at: Date; depth: number }[]
  >`
    WITH RECURSIVE chain AS (
      SELECT b.*, 0 AS depth FROM backups b WHERE b.id = ${id}
      UNION ALL
      SELECT p.*, c.depth + 1 FROM backups p JOIN chain c ON p.id = c.parent_id WHERE c.depth < 10000
    )
    SELECT id, volume_id, container, service_metadata, created_at, depth FROM chain ORDER BY depth DESC`;
  return rows.map((b) => ({
    container: b.container ?? defaultContainer(b.id),
    prefix: b.service_metadata ?? objectPrefix(b.volume_id, b.id, b.created_at),
  }));
}

/** The backup's state row is `owner`'s (the step writing is still the one running). */
const owned = (owner: string, sql: Exec) =>
  sql`EXISTS (SELECT 1 FROM resource_states s WHERE s.resource_type = 'backup' AND s.resource_id = backups.id AND s.owner = ${owner})`;

/** How far the backup's step has read its source (percent), while `owner` owns it. */
export async function recordProgress(sql: Exec, id: string, percent: number, owner: string): Promise<void> {
  await sql`UPDATE backups SET progress = ${percent}, updated_at = now() WHERE id = ${id} AND ${owned(owner, sql)}`;
}

/** What the finished backup holds, while `owner` owns it; false if the row left it. */
export async function recordBackedUp(sql: Exec, id: string, where: BackupLocation, objectCount: number, owner: string): Promise<boolean> {
  const rows = await sql`
    UPDATE backups SET object_count = ${objectCount}, progress = 100, fail_reason = NULL,
           container = ${where.container}, service_metadata = ${where.prefix}, updated_at = now()
    WHERE id = ${id} AND ${owned(owner, sql)} RETURNING id`;
  return rows.length > 0;
}

/** Why a backup failed (Cinder's fail_reason, cut to 255): in the transaction of its BACKEND_FAILED, which only its owner's step applies. */
export async function recordFailure(tx: Exec, id: string, reason: string): Promise<void> {
  await tx`UPDATE backups SET fail_reason = ${reason.slice(0, 255)}, updated_at = now() WHERE id = ${id}`;
}

/**
 * After a restore wrote the backup's data: the volume takes the metadata
 * its source had when the backup was taken (replacing its own, as Cinder's
 * restore does), and `src_backup_id` when it is not the backup's own
 * volume; while `owner` owns the volume's row.
 */
export async function recordRestored(sql: Exec, volumeId: string, backupId: string, owner: string): Promise<void> {
  await sql`
    UPDATE volumes v SET updated_at = now(),
      metadata = b.volume_metadata || CASE WHEN b.volume_id = v.id THEN '{}'::jsonb ELSE jsonb_build_object('src_backup_id', b.id::text) END
    FROM backups b
    WHERE v.id = ${volumeId} AND b.id = ${backupId}
      AND EXISTS (SELECT 1 FROM resource_states s WHERE s.resource_type = 'volume' AND s.resource_id = v.id AND s.owner = ${owner})`;
}

/** What an incremental backup may take as its parent: a finished backup (one being restored from is finished too). */
const PARENT_STATES = ['available', 'restoring'];

/**
 * The parent of an incremental backup, as Cinder picks it: the newest
 * finished backup of the volume in the project (by the time its data was
 * taken); from a snapshot, only one older than the snapshot (`before`).
 * Undefined: there is none. One index range (backups_live_volume).
 */
export async function incrementalParent(sql: Exec, volumeId: string, projectId: string, before?: Date): Promise<string | undefined> {
  const [row] = await sql<{ id: string }[]>`
    SELECT b.id FROM backups b JOIN resource_states s ON s.resource_type = 'backup' AND s.resource_id = b.id
    WHERE b.volume_id = ${volumeId} AND b.project_id = ${projectId} AND b.deleted_at IS NULL
      AND s.state = ANY(${PARENT_STATES}) ${before ? sql`AND b.data_timestamp < ${before}` : sql``}
    ORDER BY b.data_timestamp DESC, b.created_at DESC, b.id DESC LIMIT 1`;
  return row?.id;
}
