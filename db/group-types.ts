/**
 * Group types (schema.ts, group_types): rows, visibility and group specs.
 * Public types are everybody's; private ones an admin's (Cinder has no
 * per-project access to group types an API could grant).
 *
 * A type in use cannot be deleted: a group's create takes the type's row
 * `FOR KEY SHARE` in its transaction, and a delete takes it `FOR UPDATE`
 * before it looks for a live group of the type, so one waits for the other
 * (as volume types, db/volume-types.ts). Cinder reads, then deletes.
 */
import type { Executor as Exec } from './connect.ts';

/** The type of every consistency group (made by the migration, as Cinder's). */
export const CG_TYPE = 'default_cgsnapshot_type';

export interface GroupTypeRow {
  id: string;
  name: string;
  description: string | null;
  is_public: boolean;
  group_specs: Record<string, string>;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const COLUMNS = 't.id, t.name, t.description, t.is_public, t.group_specs';

/** `id = X` when X is a UUID, else `name = X`. */
function byIdOrName(sql: Exec, ref: string) {
  return UUID.test(ref) ? sql`t.id = ${ref.toLowerCase()}` : sql`t.name = ${ref}`;
}

/** admin: every type; anyone else: the public ones. */
const visibleTo = (sql: Exec, admin: boolean) => (admin ? sql`TRUE` : sql`t.is_public`);

export async function listGroupTypes(
  sql: Exec,
  admin: boolean,
  isPublic: boolean | undefined,
  sort: { key: 'name' | 'created_at' | 'id'; dir: 'asc' | 'desc' },
): Promise<GroupTypeRow[]> {
  const pub = isPublic === undefined ? sql`` : sql`AND t.is_public = ${isPublic}`;
  const dir = sort.dir === 'asc' ? sql`ASC` : sql`DESC`;
  return sql<GroupTypeRow[]>`
    SELECT ${sql.unsafe(COLUMNS)} FROM group_types t WHERE ${visibleTo(sql, admin)} ${pub}
    ORDER BY ${sql(`t.${sort.key}`)} ${dir}, t.id ${dir}`;
}

export async function findGroupType(sql: Exec, ref: string, admin: boolean, lock?: 'key share'): Promise<GroupTypeRow | undefined> {
  const [row] = await sql<GroupTypeRow[]>`
    SELECT ${sql.unsafe(COLUMNS)} FROM group_types t WHERE ${byIdOrName(sql, ref)} AND ${visibleTo(sql, admin)}
    ${lock ? sql`FOR KEY SHARE` : sql``}`;
  return row;
}

/** false: the name is taken. */
export async function insertGroupType(sql: Exec, row: GroupTypeRow): Promise<boolean> {
  const rows = await sql`
    INSERT INTO group_types (id, name, description, is_public, group_specs)
    VALUES (${row.id}, ${row.name}, ${row.description}, ${row.is_public}, ${sql.json(row.group_specs)})
    ON CONFLICT (name) DO NOTHING RETURNING id`;
  return rows.length > 0;
}

/** undefined: no such type; 'taken': the name is another's. */
export async function updateGroupType(
  sql: Exec,
  id: string,
  patch: { name?: string; description?: string | null; is_public?: boolean },
): Promise<GroupTypeRow | 'taken' | undefined> {
  const set = Object.fromEntries(Object.entries(patch).filter(([, v]) => v !== undefined));
  try {
    const [row] = await sql<GroupTypeRow[]>`
      UPDATE group_types t SET ${sql(set)}, updated_at = now() WHERE t.id = ${id} RETURNING ${sql.unsafe(COLUMNS)}`;
    return row;
  } catch (err) {
    if ((err as { code?: string }).code === '23505') return 'taken';
    throw err;
  }
}

/** Delete a type no live group uses. */
export async function deleteGroupType(tx: Exec, id: string): Promise<'missing' | 'in-use' | 'deleted'> {
  const [locked] = await tx`SELECT id FROM group_types WHERE id = ${id} FOR UPDATE`;
  if (!locked) return 'missing';
  const [used] = await tx`SELECT 1 AS one FROM groups g WHERE g.group_type_id = ${id} AND g.deleted_at IS NULL LIMIT 1`;
  if (used) return 'in-use';
  await tx`DELETE FROM group_types WHERE id = ${id}`;
  return 'deleted';
}

/** Change group specs in one statement: the specs after, or undefined (no type), null (no such key). */
export async function changeGroupSpecs(
  sql: Exec,
  id: string,
  change: { merge: Record<string, string | null> } | { remove: string },
): Promise<Record<string, string> | null | undefined> {
  const value = 'merge' in change ? sql`group_specs || ${sql.json(change.merge)}` : sql`group_specs - ${change.remove}::text`;
  const keyHeld = 'remove' in change ? sql`AND group_specs ? ${change.remove}` : sql``;
  const [row] = await sql<{ group_specs: Record<string, string> }[]>`
    UPDATE group_types SET group_specs = ${value}, updated_at = now() WHERE id = ${id} ${keyHeld} RETURNING group_specs`;
  if (row) return row.group_specs;
  if ('remove' in change) {
    const [exists] = await sql`SELECT 1 AS one FROM group_types WHERE id = ${id}`;
    if (exists) return null;
  }
  return undefined;
}
