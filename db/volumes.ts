/**
 * Volume data joined with its state row. Plain reads and data updates
 * (name, description, metadata); state changes go through the enforcer.
 */
import type postgres from 'postgres';
import { MODELS } from '../machines/index.ts';
import { countRows, listPage, type SortSpec } from './listing.ts';

type Exec = postgres.Sql | postgres.TransactionSql;

const TYPE = MODELS.volume.type;
/** States in which a volume no longer exists for clients (the final state). */
const GONE = MODELS.volume.states.filter((s) => MODELS.volume.index.isFinal(s));

export interface VolumeRecord {
  id: string;
  project_id: string;
  user_id: string | null;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  snapshot_id: string | null;
  source_volid: string | null;
  availability_zone: string;
  volume_type: string;
  bootable: boolean;
  created_at: Date;
  updated_at: Date | null;
  state: string;
  version: number;
  size: number;
  readers: number;
  dependents: number;
  state_updated_at: Date;
}

export interface NewVolume {
  id: string;
  project_id: string;
  user_id: string | null;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  snapshot_id?: string | null;
  source_volid?: string | null;
}

export const VOLUME_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'status', 'size', 'availability_zone', 'bootable'] as const;
export type VolumeSortKey = (typeof VOLUME_SORT_KEYS)[number];

const from = (sql: Exec) =>
  sql`FROM volumes v JOIN resource_states s ON s.resource_type = ${TYPE} AND s.resource_id = v.id`;
const columns = (sql: Exec) =>
  sql`v.*, s.state, s.version, s.size, s.readers, s.dependents, s.updated_at AS state_updated_at`;
const live = (sql: Exec) => sql`s.state <> ALL(${GONE})`;

export async function insertVolume(tx: Exec, v: NewVolume): Promise<void> {
  await tx`INSERT INTO volumes ${tx({ snapshot_id: null, source_volid: null, ...v } as never)}`;
}

/** A volume that exists (not deleted); of `projectId` when given. */
export async function findVolume(sql: Exec, id: string, projectId?: string): Promise<VolumeRecord | undefined> {
  const [row] = await sql<VolumeRecord[]>`
    SELECT ${columns(sql)} ${from(sql)}
    WHERE v.id = ${id} AND ${live(sql)} ${projectId === undefined ? sql`` : sql`AND v.project_id = ${projectId}`}`;
  return row;
}

export interface VolumeQuery {
  /** undefined: every project (admin, all_tenants) */
  projectId: string | undefined;
  name?: string | undefined;
  status?: string | undefined;
  metadata?: Record<string, string> | undefined;
  sort: SortSpec[];
  limit: number;
  marker?: string | undefined;
  offset?: number | undefined;
  withCount?: boolean | undefined;
}

export async function listVolumes(sql: Exec, q: VolumeQuery): Promise<{ rows: VolumeRecord[]; more: boolean; count?: number }> {
  const where = [live(sql)];
  if (q.projectId !== undefined) where.push(sql`v.project_id = ${q.projectId}`);
  if (q.name !== undefined) where.push(sql`v.name = ${q.name}`);
  if (q.status !== undefined) where.push(sql`split_part(s.state, '.', 1) = ${q.status}`);
  if (q.metadata !== undefined) where.push(sql`v.metadata @> ${sql.json(q.metadata)}`);
  const sortable: Record<VolumeSortKey, postgres.PendingQuery<postgres.Row[]>> = {
    created_at: sql`v.created_at`,
    updated_at: sql`GREATEST(COALESCE(v.updated_at, v.created_at), s.updated_at)`,
    id: sql`v.id`,
    name: sql`COALESCE(v.name, '')`,
    status: sql`split_part(s.state, '.', 1)`,
    size: sql`s.size`,
    availability_zone: sql`v.availability_zone`,
    bootable: sql`v.bootable`,
  };
  const page = await listPage<VolumeRecord>(sql, {
    from: from(sql),
    select: columns(sql),
    sortable,
    id: sql`v.id`,
    where,
    sort: q.sort,
    limit: q.limit,
    marker: q.marker,
    offset: q.offset,
  });
  if (!q.withCount) return page;
  return { ...page, count: await countRows(sql, from(sql), where) };
}

export interface VolumePatch {
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, string>;
  bootable?: boolean;
}

/** Update data columns of an existing volume; undefined when there is none. */
export async function updateVolume(sql: Exec, id: string, patch: VolumePatch, projectId?: string): Promise<VolumeRecord | undefined> {
  const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  if (Object.keys(set).length === 0) return findVolume(sql, id, projectId);
  const [row] = await sql<{ id: string }[]>`
    UPDATE volumes v SET ${sql(set as never)}, updated_at = now()
    FROM resource_states s
    WHERE s.resource_type = ${TYPE} AND s.resource_id = v.id AND v.id = ${id} AND ${live(sql)}
      ${projectId === undefined ? sql`` : sql`AND v.project_id = ${projectId}`}
    RETURNING v.id`;
  return row ? findVolume(sql, id) : undefined;
}
