/**
 * Resource data (volumes, snapshots, ...) joined with its state row: plain
 * reads, lists and data updates (name, description, metadata). State
 * changes go through the enforcer, never through here.
 *
 * One implementation for every resource table: a table is described by its
 * resource type, its name, the data columns a list may filter on and the
 * extra keys it may sort by.
 */
import type postgres from 'postgres';
import type { ResourceType } from '../machines/index.ts';
import { countRows, listPage, type SortSpec } from './listing.ts';
import type {
  AttachmentRow,
  BackupRow,
  NewAttachmentRow,
  NewBackupRow,
  NewSnapshotRow,
  NewVolumeRow,
  ResourceStateRow,
  SnapshotRow,
  VolumeRow,
} from './schema.ts';
import type { Executor as Exec } from './connect.ts';

type Fragment = postgres.PendingQuery<postgres.Row[]>;

/** The state columns a resource is read with. */
export interface StateView {
  state: string;
  version: number;
  size: number;
  readers: number;
  dependents: number;
  /** backups of it being made (a volume or snapshot shows `backing-up` meanwhile) */
  backups: number;
  /** a group's member volumes, a group snapshot's member snapshots */
  members: number;
  /** facts of the operation in flight (e.g. a reported snapshot progress); null at rest */
  operation: Record<string, unknown> | null;
  state_updated_at: Date;
  /**
   * A volume's attachments in the `attached` bucket, counted by its state
   * row (machines/attachment-counts.ts: changed in the transaction of every
   * attachment's CAS); 0 for other resources. Zero: no attachment to read.
   */
  attached_count: number;
}

export type WithState<Row> = Row & StateView;

/** The state row's columns a resource is read with (StateView), and the names it is read under. */
const STATE_COLUMNS: readonly (readonly [keyof ResourceStateRow, keyof StateView])[] = [
  ['state', 'state'],
  ['version', 'version'],
  ['size', 'size'],
  ['readers', 'readers'],
  ['dependents', 'dependents'],
  ['backups', 'backups'],
  ['members', 'members'],
  ['operation', 'operation'],
  ['updated_at', 'state_updated_at'],
  ['att_attached', 'attached_count'],
];

const STATE_SELECT = STATE_COLUMNS.map(([column, as]) => (column === as ? `s.${column}` : `s.${column} AS ${as}`)).join(', ');

export interface ListQuery {
  /** undefined: every project (admin, all_tenants) */
  projectId: string | undefined;
  name?: string | undefined;
  /** inexact filters (3.34, `name~=abc`): the column contains the text, case aside */
  like?: { name?: string | undefined; description?: string | undefined } | undefined;
  /** client-visible status: the top-level machine state */
  status?: string | undefined;
  metadata?: Record<string, string> | undefined;
  /** equality filters on the table's filterable columns */
  filters?: Record<string, string> | undefined;
  sort: SortSpec[];
  limit: number;
  marker?: string | undefined;
  offset?: number | undefined;
  withCount?: boolean | undefined;
}

export interface ResourceTableDef {
  type: ResourceType;
  table: string;
  /** data columns a list may filter on by equality */
  filters: readonly string[];
  /** sort keys beyond the common ones → SQL over `d` (data) and `s` (state) */
  sortable: Readonly<Record<string, string>>;
}

/** Sort keys every resource has → SQL expression (never NULL: a keyset compares with =). */
const COMMON_SORT: Readonly<Record<string, string>> = {
  created_at: 'd.created_at',
  updated_at: 'GREATEST(COALESCE(d.updated_at, d.created_at), s.updated_at)',
  id: 'd.id',
  status: "split_part(s.state, '.', 1)",
};

/**
 * Sort keys of resources a client names and sizes (volumes, snapshots).
 * `display_name` is the name's old spelling, which cinderclient still sends
 * for `--sort name`.
 */
const NAMED_SORT: Readonly<Record<string, string>> = { name: "COALESCE(d.name, '')", display_name: "COALESCE(d.name, '')", size: 's.size' };

/** `%`, `_` and `\` taken literally in a LIKE pattern. */
const likeLiteral = (text: string) => text.replace(/[\\%_]/g, (c) => `\\${c}`);

/** The backend holding a volume's data: its name, null (the default backend), or undefined (no such volume). */
export async function backendOf(sql: Exec, volumeId: string): Promise<string | null | undefined> {
  const [v] = await sql<{ backend: string | null }[]>`SELECT backend FROM volumes WHERE id = ${volumeId}`;
  return v?.backend;
}

export class ResourceTable<Row extends { id: string }, New extends object> {
  readonly sortKeys: readonly string[];
  private readonly sortable: Readonly<Record<string, string>>;
  constructor(private readonly def: ResourceTableDef) {
    this.sortable = { ...COMMON_SORT, ...def.sortable };
    this.sortKeys = Object.keys(this.sortable);
  }

  private from(sql: Exec): Fragment {
    return sql`FROM ${sql(this.def.table)} d JOIN resource_states s ON s.resource_type = ${this.def.type} AND s.resource_id = d.id`;
  }

  private columns(sql: Exec): Fragment {
    return sql`d.*, ${sql.unsafe(STATE_SELECT)}`;
  }

  /**
   * What `find` would read (columns() above, by the same STATE_COLUMNS) from rows already in hand: a
   * create's data row as inserted and its state row as the CREATE made it, in its transaction.
   * One statement less than reading it back (test/api/volumes.test.ts compares the two).
   */
  withState(row: Row, s: ResourceStateRow): WithState<Row> {
    const state = Object.fromEntries(STATE_COLUMNS.map(([column, as]) => [as, s[column]]));
    return { ...row, ...state } as unknown as WithState<Row>;
  }

  /** Live: no `deleted_at`, set by the CAS into the final state (db/cas.ts); the lists' partial indexes hold these rows only. */
  private live(sql: Exec): Fragment {
    return sql`d.deleted_at IS NULL`;
  }

  private scoped(sql: Exec, projectId: string | undefined): Fragment {
    return projectId === undefined ? sql`` : sql`AND d.project_id = ${projectId}`;
  }

  async insert(tx: Exec, row: New): Promise<void> {
    await tx`INSERT INTO ${tx(this.def.table)} ${tx(Object.fromEntries(Object.entries(row)))}`;
  }

  /** A resource that exists (not in its final state); of `projectId` when given. */
  async find(sql: Exec, id: string, projectId?: string): Promise<WithState<Row> | undefined> {
    const [row] = await sql<WithState<Row>[]>`
      SELECT ${this.columns(sql)} ${this.from(sql)}
      WHERE d.id = ${id} AND ${this.live(sql)} ${this.scoped(sql, projectId)}`;
    return row;
  }

  /** Whether the resource ever existed (deleted ones too, until purged); of `projectId` when given. */
  async existed(sql: Exec, id: string, projectId?: string): Promise<boolean> {
    const [row] = await sql`SELECT 1 AS one FROM ${sql(this.def.table)} d WHERE d.id = ${id} ${this.scoped(sql, projectId)}`;
    return row !== undefined;
  }

  async list(sql: Exec, q: ListQuery): Promise<{ rows: WithState<Row>[]; more: boolean; count?: number }> {
    const where = [this.live(sql)];
    if (q.projectId !== undefined) where.push(sql`d.project_id = ${q.projectId}`);
    if (q.name !== undefined) {
      if (!('name' in this.sortable)) throw new Error(`${this.def.table} have no name to filter on`);
      where.push(sql`d.name = ${q.name}`);
    }
    for (const [column, text] of Object.entries(q.like ?? {})) {
      if (text === undefined) continue;
      if (!('name' in this.sortable)) throw new Error(`${this.def.table} have no ${column} to filter on`);
      where.push(sql`${sql(`d.${column}`)} ILIKE ${`%${likeLiteral(text)}%`}`);
    }
    if (q.status !== undefined) where.push(sql`split_part(s.state, '.', 1) = ${q.status}`);
    if (q.metadata !== undefined) where.push(sql`d.metadata @> ${sql.json(q.metadata)}`);
    for (const [column, value] of Object.entries(q.filters ?? {})) {
      if (!this.def.filters.includes(column)) throw new Error(`${this.def.table} cannot be filtered on ${column}`);
      where.push(sql`${sql(`d.${column}`)} = ${value}`);
    }
    const sortable = Object.fromEntries(Object.entries(this.sortable).map(([k, expr]) => [k, sql.unsafe<postgres.Row[]>(expr)]));
    const page = await listPage<WithState<Row>>(sql, {
      from: this.from(sql),
      select: this.columns(sql),
      sortable,
      id: sql`d.id`,
      where,
      sort: q.sort,
      limit: q.limit,
      marker: q.marker,
      offset: q.offset,
    });
    if (!q.withCount) return page;
    return { ...page, count: await countRows(sql, this.from(sql), where) };
  }

  /** Live resources whose `column` is one of `values` and whose state is one of `states`. */
  async inStates(sql: Exec, column: string, values: string[], states: readonly string[]): Promise<WithState<Row>[]> {
    if (!this.def.filters.includes(column)) throw new Error(`${this.def.table} cannot be filtered on ${column}`);
    return sql<WithState<Row>[]>`
      SELECT ${this.columns(sql)} ${this.from(sql)}
      WHERE ${sql(`d.${column}`)} = ANY(${values}) AND s.state = ANY(${states as string[]})
      ORDER BY d.created_at, d.id`;
  }

  /**
   * Update data columns of an existing resource and return it as updated,
   * in one statement; undefined when there is none. (Read back by a second
   * statement, a concurrent final CAS could retire the row in between.)
   */
  async update(sql: Exec, id: string, patch: Partial<Row>, projectId?: string): Promise<WithState<Row> | undefined> {
    const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
    if (Object.keys(set).length === 0) return this.find(sql, id, projectId);
    const [row] = await sql<WithState<Row>[]>`
      UPDATE ${sql(this.def.table)} d SET ${sql(set)}, updated_at = now()
      FROM resource_states s
      WHERE s.resource_type = ${this.def.type} AND s.resource_id = d.id AND d.id = ${id} AND ${this.live(sql)}
        ${this.scoped(sql, projectId)}
      RETURNING ${this.columns(sql)}`;
    return row;
  }

  /** Live resources per project: how many, and their gigabytes (os-hosts). */
  async usageByProject(sql: Exec): Promise<{ project_id: string; count: number; gb: number }[]> {
    return sql<{ project_id: string; count: number; gb: number }[]>`
      SELECT d.project_id, count(*)::int AS count, COALESCE(sum(s.size), 0)::int AS gb ${this.from(sql)}
      WHERE ${this.live(sql)} GROUP BY d.project_id ORDER BY d.project_id`;
  }

  /** Count, total size and every metadata key's values of a project's live resources (all projects: undefined). */
  async summary(sql: Exec, projectId: string | undefined): Promise<{ count: number; gb: number; metadata: Record<string, string[]> }> {
    const where = projectId === undefined ? sql`` : sql`AND d.project_id = ${projectId}`;
    const [totals] = await sql<{ count: number; gb: number }[]>`
      SELECT count(*)::int AS count, COALESCE(sum(s.size), 0)::int AS gb ${this.from(sql)} WHERE ${this.live(sql)} ${where}`;
    const pairs = await sql<{ key: string; values: string[] }[]>`
      SELECT m.key, array_agg(DISTINCT m.value ORDER BY m.value) AS values
      ${this.from(sql)}, jsonb_each_text(d.metadata) AS m(key, value)
      WHERE ${this.live(sql)} ${where} GROUP BY m.key ORDER BY m.key`;
    return { count: totals!.count, gb: totals!.gb, metadata: Object.fromEntries(pairs.map((p) => [p.key, p.values])) };
  }

  /**
   * Change a resource's metadata in one statement (no read-modify-write, so
   * two clients setting different keys at once both keep theirs): `merge`
   * adds and overwrites keys, `replace` sets the whole, `remove` drops a key.
   * The metadata after the change; undefined when there is no such resource,
   * null when `remove` named a key it does not have.
   */
  /** The metadata of a live resource (of `projectId` when given); undefined when there is none. */
  async metadataOf(sql: Exec, id: string, projectId?: string): Promise<Record<string, string> | undefined> {
    const [row] = await sql<{ metadata: Record<string, string> }[]>`
      SELECT d.metadata FROM ${sql(this.def.table)} d WHERE d.id = ${id} AND ${this.live(sql)} ${this.scoped(sql, projectId)}`;
    return row?.metadata;
  }

  async changeMetadata(
    sql: Exec,
    id: string,
    change: { merge: Record<string, string> } | { replace: Record<string, string> } | { remove: string },
    projectId?: string,
  ): Promise<Record<string, string> | null | undefined> {
    const value =
      'merge' in change
        ? sql`d.metadata || ${sql.json(change.merge)}`
        : 'replace' in change
          ? sql`${sql.json(change.replace)}::jsonb`
          : sql`d.metadata - ${change.remove}::text`;
    const keyHeld = 'remove' in change ? sql`AND d.metadata ? ${change.remove}` : sql``;
    const [row] = await sql<{ metadata: Record<string, string> }[]>`
      UPDATE ${sql(this.def.table)} d SET metadata = ${value}, updated_at = now()
      FROM resource_states s
      WHERE s.resource_type = ${this.def.type} AND s.resource_id = d.id AND d.id = ${id} AND ${this.live(sql)}
        ${this.scoped(sql, projectId)} ${keyHeld}
      RETURNING d.metadata`;
    if (row) return row.metadata;
    if ('remove' in change && (await this.find(sql, id, projectId))) return null;
    return undefined;
  }
}

export type VolumeRecord = WithState<VolumeRow>;
export type SnapshotRecord = WithState<SnapshotRow>;
export type AttachmentRecord = WithState<AttachmentRow>;
export type BackupRecord = WithState<BackupRow>;

export const volumeTable = new ResourceTable<VolumeRow, NewVolumeRow>({
  type: 'volume',
  table: 'volumes',
  filters: ['group_id'],
  sortable: { ...NAMED_SORT, availability_zone: 'd.availability_zone', bootable: 'd.bootable' },
});

export const snapshotTable = new ResourceTable<SnapshotRow, NewSnapshotRow>({
  type: 'snapshot',
  table: 'snapshots',
  filters: ['volume_id'],
  sortable: { ...NAMED_SORT, volume_id: 'd.volume_id' },
});

export const backupTable = new ResourceTable<BackupRow, NewBackupRow>({
  type: 'backup',
  table: 'backups',
  filters: ['volume_id'],
  sortable: { ...NAMED_SORT, volume_id: 'd.volume_id' },
});

export const attachmentTable = new ResourceTable<AttachmentRow, NewAttachmentRow>({
  type: 'attachment',
  table: 'attachments',
  filters: ['volume_id', 'instance_uuid'],
  sortable: {},
});

/** GiB of live volumes by the backend they live on (null: the default backend). */
export async function volumeGbByBackend(sql: Exec): Promise<{ backend: string | null; gb: number }[]> {
  return sql<{ backend: string | null; gb: number }[]>`
    SELECT v.backend, COALESCE(sum(s.size), 0)::int AS gb FROM volumes v JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = v.id
    WHERE v.deleted_at IS NULL GROUP BY v.backend`;
}

/** A volume's type id (null: none recorded); null too for a volume that does not exist. */
export async function volumeTypeIdOf(sql: Exec, volumeId: string): Promise<string | null> {
  const [row] = await sql<{ volume_type_id: string | null }[]>`SELECT volume_type_id FROM volumes WHERE id = ${volumeId}`;
  return row?.volume_type_id ?? null;
}
