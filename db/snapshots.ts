/**
 * Snapshot data joined with its state row. Plain reads and data updates;
 * state changes go through the enforcer.
 */
import type postgres from 'postgres';
import { MODELS } from '../machines/index.ts';
import { countRows, listPage, type SortSpec } from './listing.ts';

type Exec = postgres.Sql | postgres.TransactionSql;

const TYPE = MODELS.snapshot.type;
const GONE = MODELS.snapshot.states.filter((s) => MODELS.snapshot.index.isFinal(s));

export interface SnapshotRecord {
  id: string;
  project_id: string;
  user_id: string | null;
  volume_id: string;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  created_at: Date;
  updated_at: Date | null;
  state: string;
  version: number;
  size: number;
  readers: number;
  state_updated_at: Date;
}

export interface NewSnapshot {
  id: string;
  project_id: string;
  user_id: string | null;
  volume_id: string;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
}

export const SNAPSHOT_SORT_KEYS = ['created_at', 'updated_at', 'id', 'name', 'status', 'size', 'volume_id'] as const;
export type SnapshotSortKey = (typeof SNAPSHOT_SORT_KEYS)[number];

const from = (sql: Exec) =>
  sql`FROM snapshots n JOIN resource_states s ON s.resource_type = ${TYPE} AND s.resource_id = n.id`;
const columns = (sql: Exec) => sql`n.*, s.state, s.version, s.size, s.readers, s.updated_at AS state_updated_at`;
const live = (sql: Exec) => sql`s.state <> ALL(${GONE})`;

export async function insertSnapshot(tx: Exec, n: NewSnapshot): Promise<void> {
  await tx`INSERT INTO snapshots ${tx(n as never)}`;
}

export async function findSnapshot(sql: Exec, id: string, projectId?: string): Promise<SnapshotRecord | undefined> {
  const [row] = await sql<SnapshotRecord[]>`
    SELECT ${columns(sql)} ${from(sql)}
    WHERE n.id = ${id} AND ${live(sql)} ${projectId === undefined ? sql`` : sql`AND n.project_id = ${projectId}`}`;
  return row;
}

export interface SnapshotQuery {
  projectId: string | undefined;
  name?: string | undefined;
  status?: string | undefined;
  volumeId?: string | undefined;
  metadata?: Record<string, string> | undefined;
  sort: SortSpec[];
  limit: number;
  marker?: string | undefined;
  offset?: number | undefined;
  withCount?: boolean | undefined;
}

export async function listSnapshots(sql: Exec, q: SnapshotQuery): Promise<{ rows: SnapshotRecord[]; more: boolean; count?: number }> {
  const where = [live(sql)];
  if (q.projectId !== undefined) where.push(sql`n.project_id = ${q.projectId}`);
  if (q.name !== undefined) where.push(sql`n.name = ${q.name}`);
  if (q.status !== undefined) where.push(sql`split_part(s.state, '.', 1) = ${q.status}`);
  if (q.volumeId !== undefined) where.push(sql`n.volume_id = ${q.volumeId}`);
  if (q.metadata !== undefined) where.push(sql`n.metadata @> ${sql.json(q.metadata)}`);
  const sortable: Record<SnapshotSortKey, postgres.PendingQuery<postgres.Row[]>> = {
    created_at: sql`n.created_at`,
    updated_at: sql`GREATEST(COALESCE(n.updated_at, n.created_at), s.updated_at)`,
    id: sql`n.id`,
    name: sql`COALESCE(n.name, '')`,
    status: sql`split_part(s.state, '.', 1)`,
    size: sql`s.size`,
    volume_id: sql`n.volume_id`,
  };
  const page = await listPage<SnapshotRecord>(sql, {
    from: from(sql),
    select: columns(sql),
    sortable,
    id: sql`n.id`,
    where,
    sort: q.sort,
    limit: q.limit,
    marker: q.marker,
    offset: q.offset,
  });
  if (!q.withCount) return page;
  return { ...page, count: await countRows(sql, from(sql), where) };
}

export interface SnapshotPatch {
  name?: string | null;
  description?: string | null;
  metadata?: Record<string, string>;
}

export async function updateSnapshot(sql: Exec, id: string, patch: SnapshotPatch, projectId?: string): Promise<SnapshotRecord | undefined> {
  const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  if (Object.keys(set).length === 0) return findSnapshot(sql, id, projectId);
  const [row] = await sql<{ id: string }[]>`
    UPDATE snapshots n SET ${sql(set as never)}, updated_at = now()
    FROM resource_states s
    WHERE s.resource_type = ${TYPE} AND s.resource_id = n.id AND n.id = ${id} AND ${live(sql)}
      ${projectId === undefined ? sql`` : sql`AND n.project_id = ${projectId}`}
    RETURNING n.id`;
  return row ? findSnapshot(sql, id) : undefined;
}
