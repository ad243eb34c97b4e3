/**
 * Volume types: rows, visibility, extra specs and access (schema.ts,
 * volume_types). Visibility: public types, and private ones to the projects
 * given access; an admin sees every type.
 *
 * A type in use cannot be deleted: a volume create takes the type's row
 * `FOR KEY SHARE` in its statement (db/volume-create.ts; a group's create
 * and a retype in their transactions, typeForCreate), and a delete takes it
 * `FOR UPDATE` before it counts the live volumes and snapshots of the type (deleteType),
 * so one waits for the other and the count sees the volume, or the create
 * finds no type.
 */
import type { Executor as Exec } from './connect.ts';

export const DEFAULT_TYPE = '__DEFAULT__';

export interface VolumeTypeRow {
  id: string;
  name: string;
  description: string | null;
  is_public: boolean;
  extra_specs: Record<string, string>;
  qos_specs_id: string | null;
  /** it has an encryption (volume_type_encryption): its volumes show `encrypted: true` */
  encrypted: boolean;
}

/** A type's encryption, as Cinder shows it (data only: volstate's backends store what they are given). */
export interface EncryptionRow {
  volume_type_id: string;
  encryption_id: string;
  provider: string;
  cipher: string | null;
  key_size: number | null;
  control_location: 'front-end' | 'back-end';
  created_at: Date;
  updated_at: Date | null;
}

export type EncryptionFields = Pick<EncryptionRow, 'provider' | 'cipher' | 'key_size' | 'control_location'>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** `id = X` when X is a UUID, else `name = X` (Cinder looks types up by either). */
function byIdOrName(sql: Exec, ref: string) {
  return UUID.test(ref) ? sql`t.id = ${ref.toLowerCase()}` : sql`t.name = ${ref}`;
}

/** Visible to the project (undefined: an admin, who sees every type). */
function visibleTo(sql: Exec, projectId: string | undefined) {
  if (projectId === undefined) return sql`TRUE`;
  return sql`(t.is_public OR EXISTS (SELECT 1 FROM volume_type_access a WHERE a.volume_type_id = t.id AND a.project_id = ${projectId}))`;
}

const COLUMNS =
  't.id, t.name, t.description, t.is_public, t.extra_specs, t.qos_specs_id, EXISTS (SELECT 1 FROM volume_type_encryption e WHERE e.volume_type_id = t.id) AS encrypted';

export async function listTypes(sql: Exec, projectId: string | undefined, isPublic: boolean | undefined): Promise<VolumeTypeRow[]> {
  const pub = isPublic === undefined ? sql`` : sql`AND t.is_public = ${isPublic}`;
  return sql<
    VolumeTypeRow[]
  >`SELECT ${sql.unsafe(COLUMNS)} FROM volume_types t WHERE ${visibleTo(sql, projectId)} ${pub} ORDER BY t.created_at, t.id`;
}

export async function findType(sql: Exec, ref: string, projectId: string | undefined): Promise<VolumeTypeRow | undefined> {
  const [row] = await sql<
    VolumeTypeRow[]
  >`SELECT ${sql.unsafe(COLUMNS)} FROM volume_types t WHERE ${byIdOrName(sql, ref)} AND ${visibleTo(sql, projectId)}`;
  return row;
}

/**
 * SQL text: the type a volume's create names (`typeRef`: by id, or by name; neither: the
 * project's default (3.62), else __DEFAULT__), visible to `scope` when named (NULL: an admin,
 * who may use any), locked `FOR KEY SHARE` against its deletion until the statement's
 * transaction ends. `p` gives the placeholders of the four parameters; its one source for a
 * volume's create (db/volume-create.ts) and the others that take a type for a volume.
 */
export function typeForCreateSql(p: (name: 'type_id' | 'type_name' | 'project_id' | 'scope') => string): string {
  return `SELECT ${COLUMNS} FROM volume_types t
  WHERE t.id = CASE
      WHEN ${p('type_id')}::uuid IS NOT NULL THEN ${p('type_id')}::uuid
      WHEN ${p('type_name')}::text IS NOT NULL THEN (SELECT x.id FROM volume_types x WHERE x.name = ${p('type_name')}::text)
      ELSE COALESCE((SELECT d.volume_type_id FROM default_volume_types d WHERE d.project_id = ${p('project_id')}::text),
                    (SELECT x.id FROM volume_types x WHERE x.name = '${DEFAULT_TYPE}'))
    END
    AND (${p('type_id')}::uuid IS NULL AND ${p('type_name')}::text IS NULL OR ${p('scope')}::text IS NULL OR t.is_public
      OR EXISTS (SELECT 1 FROM volume_type_access a WHERE a.volume_type_id = t.id AND a.project_id = ${p('scope')}::text))
  FOR KEY SHARE OF t`;
}

const TYPE_FOR_CREATE_PARAMS = ['type_id', 'type_name', 'project_id', 'scope'] as const;
const TYPE_FOR_CREATE = typeForCreateSql((name) => `$${TYPE_FOR_CREATE_PARAMS.indexOf(name) + 1}`);

/** The type a new volume of a group, or a retype, names (visible to `projectId`; undefined: an admin), locked as typeForCreateSql says. */
export async function typeForCreate(tx: Exec, ref: string, projectId: string | undefined): Promise<VolumeTypeRow | undefined> {
  const { id, name } = typeRef(ref);
  const [row] = await tx.unsafe<VolumeTypeRow[]>(TYPE_FOR_CREATE, [id, name, null, projectId ?? null], { prepare: true });
  return row;
}

/**
 * A type as a create names it (typeForCreateSql): by id when the name is a UUID, else by
 * name; neither when none is named (the project's default).
 */
export function typeRef(ref: string | null | undefined): { id: string | null; name: string | null } {
  if (!ref) return { id: null, name: null };
  return UUID.test(ref) ? { id: ref.toLowerCase(), name: null } : { id: null, name: ref };
}

/** A project's default type (3.62), if one is set. */
export async function projectDefaultType(sql: Exec, projectId: string): Promise<VolumeTypeRow | undefined> {
  const [row] = await sql<VolumeTypeRow[]>`
    SELECT ${sql.unsafe(COLUMNS)} FROM default_volume_types d JOIN volume_types t ON t.id = d.volume_type_id WHERE d.project_id = ${projectId}`;
  return row;
}

export interface ProjectDefault {
  project_id: string;
  volume_type_id: string;
}

/** The project defaults (one project's, or all). */
export async function listProjectDefaults(sql: Exec, projectId?: string): Promise<ProjectDefault[]> {
  return sql<ProjectDefault[]>`
    SELECT project_id, volume_type_id FROM default_volume_types ${projectId === undefined ? sql`` : sql`WHERE project_id = ${projectId}`}
    ORDER BY project_id`;
}

/** Set a project's default type (the type is locked by the foreign key's check against its deletion). */
export async function setProjectDefault(sql: Exec, projectId: string, typeId: string): Promise<ProjectDefault> {
  const [row] = await sql<ProjectDefault[]>`
    INSERT INTO default_volume_types (project_id, volume_type_id) VALUES (${projectId}, ${typeId})
    ON CONFLICT (project_id) DO UPDATE SET volume_type_id = EXCLUDED.volume_type_id, updated_at = now()
    RETURNING project_id, volume_type_id`;
  return row!;
}

/** false: the project had no default. */
export async function unsetProjectDefault(sql: Exec, projectId: string): Promise<boolean> {
  return (await sql`DELETE FROM default_volume_types WHERE project_id = ${projectId} RETURNING project_id`).length > 0;
}

/** false: the name is taken. */
export async function insertType(sql: Exec, row: VolumeTypeRow): Promise<boolean> {
  const rows = await sql`
    INSERT INTO volume_types (id, name, description, is_public, extra_specs)
    VALUES (${row.id}, ${row.name}, ${row.description}, ${row.is_public}, ${sql.json(row.extra_specs)})
    ON CONFLICT (name) DO NOTHING RETURNING id`;
  return rows.length > 0;
}

/**
 * Rename, describe or publish a type; its volumes show the new name from
 * the same transaction. undefined: no such type; 'taken': the name is another's.
 */
export async function updateType(
  tx: Exec,
  id: string,
  patch: { name?: string; description?: string | null; is_public?: boolean },
): Promise<VolumeTypeRow | 'taken' | undefined> {
  const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  try {
    const [row] = await tx<VolumeTypeRow[]>`
      UPDATE volume_types t SET ${tx(set)}, updated_at = now() WHERE t.id = ${id}
      RETURNING ${tx.unsafe(COLUMNS)}`;
    if (row && patch.name !== undefined) await tx`UPDATE volumes SET volume_type = ${row.name} WHERE volume_type_id = ${id}`;
    return row;
  } catch (err) {
    if ((err as { code?: string }).code === '23505') return 'taken';
    throw err;
  }
}

/** Delete a type no live volume uses and no project has as its default: 'missing', 'in-use', 'default' or 'deleted'. */
export async function deleteType(tx: Exec, id: string): Promise<'missing' | 'in-use' | 'default' | 'deleted'> {
  const [locked] = await tx`SELECT id FROM volume_types WHERE id = ${id} FOR UPDATE`;
  if (!locked) return 'missing';
  const [isDefault] = await tx`SELECT 1 AS one FROM default_volume_types WHERE volume_type_id = ${id} LIMIT 1`;
  if (isDefault) return 'default';
  // A live snapshot taken of the type counts against its per-type quota: it holds the type too.
  const [used] = await tx`
    SELECT 1 AS one FROM volumes v WHERE v.volume_type_id = ${id} AND v.deleted_at IS NULL
    UNION ALL
    SELECT 1 FROM groups g WHERE ${id} = ANY(g.volume_type_ids) AND g.deleted_at IS NULL
    UNION ALL
    SELECT 1 FROM snapshots n WHERE n.volume_type_id = ${id} AND n.deleted_at IS NULL
    LIMIT 1`;
  if (used) return 'in-use';
  await tx`DELETE FROM volume_types WHERE id = ${id}`;
  return 'deleted';
}

/** Change extra specs in one statement (as resources' metadata): the specs after, or undefined (no type), null (no such key). */
export async function changeExtraSpecs(
  sql: Exec,
  id: string,
  change: { merge: Record<string, string> } | { remove: string },
): Promise<Record<string, string> | null | undefined> {
  const value = 'merge' in change ? sql`extra_specs || ${sql.json(change.merge)}` : sql`extra_specs - ${change.remove}::text`;
  const keyHeld = 'remove' in change ? sql`AND extra_specs ? ${change.remove}` : sql``;
  const [row] = await sql<{ extra_specs: Record<string, string> }[]>`
    UPDATE volume_types SET extra_specs = ${value}, updated_at = now() WHERE id = ${id} ${keyHeld} RETURNING extra_specs`;
  if (row) return row.extra_specs;
  if ('remove' in change) {
    const [exists] = await sql`SELECT 1 AS one FROM volume_types WHERE id = ${id}`;
    if (exists) return null;
  }
  return undefined;
}

export async function typeAccess(sql: Exec, id: string): Promise<string[]> {
  const rows = await sql<
    { project_id: string }[]
  >`SELECT project_id FROM volume_type_access WHERE volume_type_id = ${id} ORDER BY project_id`;
  return rows.map((r) => r.project_id);
}

/** false: the project already had access (add) or had none (remove). */
export async function setTypeAccess(sql: Exec, id: string, projectId: string, grant: boolean): Promise<boolean> {
  const rows = grant
    ? await sql`INSERT INTO volume_type_access (volume_type_id, project_id) VALUES (${id}, ${projectId}) ON CONFLICT DO NOTHING RETURNING project_id`
    : await sql`DELETE FROM volume_type_access WHERE volume_type_id = ${id} AND project_id = ${projectId} RETURNING project_id`;
  return rows.length > 0;
}

/** The type's encryption, if it has one. */
export async function encryptionOf(sql: Exec, typeId: string): Promise<EncryptionRow | undefined> {
  const [row] = await sql<EncryptionRow[]>`
    SELECT volume_type_id, encryption_id, provider, cipher, key_size, control_location, created_at, updated_at
    FROM volume_type_encryption WHERE volume_type_id = ${typeId}`;
  return row;
}

/**
 * Change a type's encryption: only while no live volume has the type, judged
 * with the type's row locked (a volume create holds it FOR KEY SHARE until
 * it commits, so the two wait for each other). Cinder checks with separate
 * reads and has no unique key on the type: two creates can both insert.
 */
export async function changeEncryption(
  tx: Exec,
  typeId: string,
  change: { create: EncryptionFields & { encryption_id: string } } | { update: Partial<EncryptionFields> } | { delete: true },
): Promise<EncryptionRow | 'missing-type' | 'in-use' | 'exists' | 'none' | 'deleted'> {
  const [locked] = await tx`SELECT id FROM volume_types WHERE id = ${typeId} FOR UPDATE`;
  if (!locked) return 'missing-type';
  const [used] = await tx`SELECT 1 AS one FROM volumes v WHERE v.volume_type_id = ${typeId} AND v.deleted_at IS NULL LIMIT 1`;
  if (used) return 'in-use';
  if ('create' in change) {
    const [row] = await tx<EncryptionRow[]>`
      INSERT INTO volume_type_encryption ${tx({ volume_type_id: typeId, ...change.create })}
      ON CONFLICT (volume_type_id) DO NOTHING
      RETURNING volume_type_id, encryption_id, provider, cipher, key_size, control_location, created_at, updated_at`;
    return row ?? 'exists';
  }
  if ('update' in change) {
    const set = { ...Object.fromEntries(Object.entries(change.update).filter(([, v]) => v !== undefined)), updated_at: new Date() };
    const [row] = await tx<EncryptionRow[]>`
      UPDATE volume_type_encryption SET ${tx(set)}
      WHERE volume_type_id = ${typeId}
      RETURNING volume_type_id, encryption_id, provider, cipher, key_size, control_location, created_at, updated_at`;
    return row ?? 'none';
  }
  const gone = await tx`DELETE FROM volume_type_encryption WHERE volume_type_id = ${typeId} RETURNING volume_type_id`;
  return gone.length ? 'deleted' : 'none';
}
