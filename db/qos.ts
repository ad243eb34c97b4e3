/**
 * QoS specs (schema.ts, qos_specs): rows, specs changed in one statement,
 * associations with volume types. A QoS specs with associated types is
 * deleted only by force, which dissociates them in the same transaction.
 */
import type { Executor as Exec } from './connect.ts';

export interface QosRow {
  id: string;
  name: string;
  consumer: string;
  specs: Record<string, string>;
}

const COLUMNS = 'id, name, consumer, specs';

export async function listQos(sql: Exec): Promise<QosRow[]> {
  return sql<QosRow[]>`SELECT ${sql.unsafe(COLUMNS)} FROM qos_specs ORDER BY created_at, id`;
}

export async function findQos(sql: Exec, id: string): Promise<QosRow | undefined> {
  const [row] = await sql<QosRow[]>`SELECT ${sql.unsafe(COLUMNS)} FROM qos_specs WHERE id = ${id}`;
  return row;
}

/** false: the name is taken. */
export async function insertQos(sql: Exec, row: QosRow): Promise<boolean> {
  const rows = await sql`
    INSERT INTO qos_specs (id, name, consumer, specs) VALUES (${row.id}, ${row.name}, ${row.consumer}, ${sql.json(row.specs)})
    ON CONFLICT (name) DO NOTHING RETURNING id`;
  return rows.length > 0;
}

/** Merge specs in, or remove keys (all of them present, else nothing changes): the specs after; undefined: no such QoS specs; null: a key to remove is missing. */
export async function changeQosSpecs(
  sql: Exec,
  id: string,
  change: { merge: Record<string, string> } | { remove: string[] },
): Promise<Record<string, string> | null | undefined> {
  const value = 'merge' in change ? sql`specs || ${sql.json(change.merge)}` : sql`specs - ${change.remove}::text[]`;
  const held = 'remove' in change ? sql`AND specs ?& ${change.remove}::text[]` : sql``;
  const [row] = await sql<
    { specs: Record<string, string> }[]
  >`UPDATE qos_specs SET specs = ${value}, updated_at = now() WHERE id = ${id} ${held} RETURNING specs`;
  if (row) return row.specs;
  return (await findQos(sql, id)) ? null : undefined;
}

/** Delete: 'missing', 'in-use' (types are associated and force is off) or 'deleted'. */
export async function deleteQos(tx: Exec, id: string, force: boolean): Promise<'missing' | 'in-use' | 'deleted'> {
  const [locked] = await tx`SELECT id FROM qos_specs WHERE id = ${id} FOR UPDATE`;
  if (!locked) return 'missing';
  const [used] = await tx`SELECT 1 AS one FROM volume_types WHERE qos_specs_id = ${id} LIMIT 1`;
  if (used && !force) return 'in-use';
  await tx`DELETE FROM qos_specs WHERE id = ${id}`;
  return 'deleted';
}

export async function associations(sql: Exec, id: string): Promise<{ id: string; name: string }[]> {
  return sql<{ id: string; name: string }[]>`SELECT id, name FROM volume_types WHERE qos_specs_id = ${id} ORDER BY name`;
}

/**
 * Associate a type (it must have no other QoS specs: 'taken'), or
 * dissociate one or all. 'missing-type': no such type.
 */
export async function associate(sql: Exec, id: string, typeId: string, on: boolean): Promise<'ok' | 'missing-type' | 'taken'> {
  if (typeId === 'all') {
    await sql`UPDATE volume_types SET qos_specs_id = NULL WHERE qos_specs_id = ${id}`;
    return 'ok';
  }
  const rows = on
    ? await sql`UPDATE volume_types SET qos_specs_id = ${id} WHERE id = ${typeId} AND (qos_specs_id IS NULL OR qos_specs_id = ${id}) RETURNING id`
    : await sql`UPDATE volume_types SET qos_specs_id = NULL WHERE id = ${typeId} AND qos_specs_id = ${id} RETURNING id`;
  if (rows.length > 0) return 'ok';
  const [exists] = await sql`SELECT 1 AS one FROM volume_types WHERE id = ${typeId}`;
  if (!exists) return 'missing-type';
  return on ? 'taken' : 'ok';
}

/**
 * The QoS specs a host applies to a volume's connection, as Cinder puts them
 * in `connection_info.data.qos_specs`: those of the volume type's QoS specs
 * whose consumer is `front-end` or `both`; null otherwise (a `back-end`
 * consumer is the backend's business, and volstate's backends enforce none).
 */
export async function frontEndSpecs(sql: Exec, volumeId: string): Promise<Record<string, string> | null> {
  const [row] = await sql<{ specs: Record<string, string> }[]>`
    SELECT q.specs FROM volumes v JOIN volume_types t ON t.id = v.volume_type_id JOIN qos_specs q ON q.id = t.qos_specs_id
    WHERE v.id = ${volumeId} AND q.consumer IN ('front-end', 'both')`;
  return row?.specs ?? null;
}
