/**
 * The notification relay's statements (src/notify/relay.ts): its lease and
 * position (`notification_relay`), and the rows its payloads are made of.
 */
import type postgres from 'postgres';

export const RELAY_NAME = 'notifications';

export interface RelayLease {
  /** every transition with an id up to this one is confirmed by the broker */
  position: number;
}

/**
 * Take or keep the relay's lease for `leaseMs`: granted to the holder, or
 * to anyone once it lapsed. The first relay ever starts at the newest
 * transition (enabling notifications does not replay the whole history).
 * Undefined: another node holds it.
 */
export async function takeLease(sql: postgres.Sql, holder: string, leaseMs: number): Promise<RelayLease | undefined> {
  const [row] = await sql<{ position: number }[]>`
    WITH seeded AS (
      INSERT INTO notification_relay (name, position)
      SELECT ${RELAY_NAME}, coalesce(max(id), 0) FROM state_transitions
      ON CONFLICT (name) DO NOTHING
    )
    UPDATE notification_relay
    SET holder = ${holder}, lease_until = now() + ${leaseMs} * interval '1 millisecond', updated_at = now()
    WHERE name = ${RELAY_NAME} AND (holder = ${holder} OR holder IS NULL OR lease_until < now())
    RETURNING position::float8 AS position`;
  if (row) return row;
  // The row was only seeded by this statement (its UPDATE does not see the insert): try once more.
  const [again] = await sql<{ position: number }[]>`
    UPDATE notification_relay
    SET holder = ${holder}, lease_until = now() + ${leaseMs} * interval '1 millisecond', updated_at = now()
    WHERE name = ${RELAY_NAME} AND (holder = ${holder} OR holder IS NULL OR lease_until < now())
    RETURNING position::float8 AS position`;
  return again;
}

/** Move the position after the broker confirmed up to it; false: the lease was lost (another node relays now). */
export async function advance(sql: postgres.Sql, holder: string, position: number, leaseMs: number): Promise<boolean> {
  const rows = await sql`
    UPDATE notification_relay
    SET position = greatest(position, ${position}), lease_until = now() + ${leaseMs} * interval '1 millisecond', updated_at = now()
    WHERE name = ${RELAY_NAME} AND holder = ${holder}`;
  return rows.count === 1;
}

/** Give the lease up (a node stopping): the next relay need not wait for it to lapse. */
export async function releaseLease(sql: postgres.Sql, holder: string): Promise<void> {
  await sql`UPDATE notification_relay SET holder = NULL, lease_until = NULL WHERE name = ${RELAY_NAME} AND holder = ${holder}`;
}

/** Transitions not yet confirmed: after the position, up to the newest (0 when no relay ever ran). */
export async function relayLag(sql: postgres.Sql): Promise<{ position: number; lag: number } | undefined> {
  const [row] = await sql<{ position: number; lag: number }[]>`
    SELECT r.position::float8 AS position,
           (SELECT count(*) FROM state_transitions t WHERE t.id > r.position)::float8 AS lag
    FROM notification_relay r WHERE r.name = ${RELAY_NAME}`;
  return row;
}

/** What a volume's usage payload is made of (Cinder's `_usage_from_volume`). */
export interface VolumeUsageRow {
  id: string;
  project_id: string;
  user_id: string | null;
  name: string | null;
  availability_zone: string;
  backend: string | null;
  volume_type_id: string | null;
  snapshot_id: string | null;
  source_volid: string | null;
  created_at: Date;
  /** when it first became available: its BACKEND_CREATED (or the restore that made it) */
  launched_at: Date | null;
  metadata: Record<string, string> | null;
  /** its size now (a transition's own size is in the history) */
  size: number;
}

/**
 * A volume's `launched_at` (Cinder's: when it first became available), from
 * its history; a column of a query over `volumes v`.
 */
const LAUNCHED_AT = `(SELECT t.at FROM state_transitions t
            WHERE t.resource_type = 'volume' AND t.resource_id = v.id AND t.from_state LIKE 'creating%' AND t.to_state = 'available'
            ORDER BY t.version LIMIT 1) AS launched_at`;

export async function volumeUsageRows(sql: postgres.Sql, ids: string[]): Promise<VolumeUsageRow[]> {
  if (ids.length === 0) return [];
  return sql<VolumeUsageRow[]>`
    SELECT v.id, v.project_id, v.user_id, v.name, v.availability_zone, v.backend, v.volume_type_id, v.snapshot_id,
           v.source_volid, v.created_at, v.metadata,
           coalesce((SELECT s.size FROM resource_states s WHERE s.resource_type = 'volume' AND s.resource_id = v.id), 0) AS size,
           ${sql.unsafe(LAUNCHED_AT)}
    FROM volumes v WHERE v.id = ANY(${ids}::uuid[])`;
}

export interface SnapshotUsageRow {
  id: string;
  project_id: string;
  user_id: string | null;
  volume_id: string;
  name: string | null;
  availability_zone: string | null;
  created_at: Date;
  metadata: Record<string, string> | null;
}

export async function snapshotUsageRows(sql: postgres.Sql, ids: string[]): Promise<SnapshotUsageRow[]> {
  if (ids.length === 0) return [];
  return sql<SnapshotUsageRow[]>`
    SELECT n.id, n.project_id, n.user_id, n.volume_id, n.name, v.availability_zone, n.created_at, n.metadata
    FROM snapshots n LEFT JOIN volumes v ON v.id = n.volume_id
    WHERE n.id = ANY(${ids}::uuid[])`;
}

export interface AttachmentUsageRow {
  id: string;
  volume_id: string;
  instance_uuid: string | null;
  host_name: string | null;
  mountpoint: string | null;
}

export async function attachmentUsageRows(sql: postgres.Sql, ids: string[]): Promise<AttachmentUsageRow[]> {
  if (ids.length === 0) return [];
  return sql<AttachmentUsageRow[]>`
    SELECT id, volume_id, instance_uuid, host_name, mountpoint FROM attachments WHERE id = ANY(${ids}::uuid[])`;
}

export interface BackupUsageRow {
  id: string;
  project_id: string;
  user_id: string | null;
  volume_id: string;
  snapshot_id: string | null;
  parent_id: string | null;
  name: string | null;
  availability_zone: string | null;
  service_metadata: string | null;
  fail_reason: string | null;
  created_at: Date;
  num_dependent_backups: number;
}

export async function backupUsageRows(sql: postgres.Sql, ids: string[]): Promise<BackupUsageRow[]> {
  if (ids.length === 0) return [];
  return sql<BackupUsageRow[]>`
    SELECT b.id, b.project_id, b.user_id, b.volume_id, b.snapshot_id, b.parent_id, b.name, b.availability_zone,
           b.service_metadata, b.fail_reason, b.created_at,
           (SELECT count(*) FROM backups c WHERE c.parent_id = b.id AND c.deleted_at IS NULL)::int AS num_dependent_backups
    FROM backups b WHERE b.id = ANY(${ids}::uuid[])`;
}

export interface GroupUsageRow {
  id: string;
  project_id: string;
  user_id: string | null;
  name: string | null;
  availability_zone: string | null;
  group_type_id: string;
  group_id: string | null;
  created_at: Date;
}

export async function groupUsageRows(sql: postgres.Sql, ids: string[]): Promise<GroupUsageRow[]> {
  if (ids.length === 0) return [];
  return sql<GroupUsageRow[]>`
    SELECT id, project_id, user_id, name, availability_zone, group_type_id, NULL::uuid AS group_id, created_at
    FROM groups WHERE id = ANY(${ids}::uuid[])`;
}

export async function groupSnapshotUsageRows(sql: postgres.Sql, ids: string[]): Promise<GroupUsageRow[]> {
  if (ids.length === 0) return [];
  return sql<GroupUsageRow[]>`
    SELECT s.id, s.project_id, s.user_id, s.name, g.availability_zone, s.group_type_id, s.group_id, s.created_at
    FROM group_snapshots s LEFT JOIN groups g ON g.id = s.group_id WHERE s.id = ANY(${ids}::uuid[])`;
}

/** A volume or snapshot that existed in an audit period, with its state now (`volstate audit`). */
export type ExistingVolumeRow = VolumeUsageRow & { state: string; deleted_at: Date | null };
export type ExistingSnapshotRow = SnapshotUsageRow & { state: string; size: number; deleted_at: Date | null };

/** Volumes created before `end` and not deleted before `begin`, by id after `after`, at most `limit`. */
export async function volumesExisting(
  sql: postgres.Sql,
  begin: Date,
  end: Date,
  after: string,
  limit: number,
): Promise<ExistingVolumeRow[]> {
  return sql<ExistingVolumeRow[]>`
    SELECT v.id, v.project_id, v.user_id, v.name, v.availability_zone, v.backend, v.volume_type_id, v.snapshot_id,
           v.source_volid, v.created_at, v.metadata, v.deleted_at, s.state, s.size,
           ${sql.unsafe(LAUNCHED_AT)}
    FROM volumes v JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = v.id
    WHERE v.id > ${after}::uuid AND v.created_at < ${end} AND (v.deleted_at IS NULL OR v.deleted_at >= ${begin})
    ORDER BY v.id LIMIT ${limit}`;
}

/** Snapshots created before `end` and not deleted before `begin`, by id after `after`, at most `limit`. */
export async function snapshotsExisting(
  sql: postgres.Sql,
  begin: Date,
  end: Date,
  after: string,
  limit: number,
): Promise<ExistingSnapshotRow[]> {
  return sql<ExistingSnapshotRow[]>`
    SELECT n.id, n.project_id, n.user_id, n.volume_id, n.name, v.availability_zone, n.created_at, n.metadata, n.deleted_at, s.state, s.size
    FROM snapshots n JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = n.id
    LEFT JOIN volumes v ON v.id = n.volume_id
    WHERE n.id > ${after}::uuid AND n.created_at < ${end} AND (n.deleted_at IS NULL OR n.deleted_at >= ${begin})
    ORDER BY n.id LIMIT ${limit}`;
}
