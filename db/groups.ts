/**
 * Groups and group snapshots: their tables (read like every resource,
 * db/resources.ts) and the reads of their members that the services and
 * the group snapshot's step need.
 *
 * Membership (`volumes.group_id`) changes only in a transaction that holds
 * the group's state row (its MEMBER_ADD / UPDATE CAS, or a member's final
 * CAS giving its lease back), so a transaction that has locked the group's
 * row reads a membership nobody can change before it commits.
 */
import type { Executor as Exec } from './connect.ts';
import { CG_TYPE } from './group-types.ts';
import { ResourceTable, type WithState } from './resources.ts';
import type { GroupRow, GroupSnapshotRow, NewGroupRow, NewGroupSnapshotRow } from './schema.ts';

export type GroupRecord = WithState<GroupRow>;
export type GroupSnapshotRecord = WithState<GroupSnapshotRow>;

export const groupTable = new ResourceTable<GroupRow, NewGroupRow>({
  type: 'group',
  table: 'groups',
  filters: ['group_type_id', 'name'],
  sortable: { name: "COALESCE(d.name, '')" },
});

export const groupSnapshotTable = new ResourceTable<GroupSnapshotRow, NewGroupSnapshotRow>({
  type: 'group_snapshot',
  table: 'group_snapshots',
  filters: ['group_id', 'name'],
  sortable: { name: "COALESCE(d.name, '')" },
});

/** The live volumes of a group, in id order. */
export async function groupMembers(sql: Exec, groupId: string): Promise<{ id: string; volume_type_id: string | null }[]> {
  return sql<{ id: string; volume_type_id: string | null }[]>`
    SELECT v.id, v.volume_type_id FROM volumes v WHERE v.group_id = ${groupId} AND v.deleted_at IS NULL ORDER BY v.id`;
}

/** The member volume ids of several groups (for a list's `volumes`, 3.25). */
export async function membersOfGroups(sql: Exec, groupIds: readonly string[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>(groupIds.map((g) => [g, []]));
  if (groupIds.length === 0) return out;
  const rows = await sql<{ group_id: string; id: string }[]>`
    SELECT v.group_id, v.id FROM volumes v WHERE v.group_id = ANY(${groupIds as string[]}::uuid[]) AND v.deleted_at IS NULL ORDER BY v.id`;
  for (const r of rows) out.get(r.group_id)?.push(r.id);
  return out;
}

/** The member snapshots of a group snapshot, with the volume and backend each one's copy is of. */
export async function groupSnapshotMembers(
  sql: Exec,
  groupSnapshotId: string,
): Promise<{ id: string; volume_id: string; backend: string | null; state: string }[]> {
  return sql<{ id: string; volume_id: string; backend: string | null; state: string }[]>`
    SELECT n.id, n.volume_id, v.backend, s.state
      FROM snapshots n JOIN volumes v ON v.id = n.volume_id
      JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = n.id
     WHERE n.group_snapshot_id = ${groupSnapshotId} AND n.deleted_at IS NULL
     ORDER BY n.id`;
}

/** Set or clear the group of volumes (in the transaction of the group's CAS); `consistencygroup_id` too when the group is a consistency group. */
export async function setGroupOf(tx: Exec, volumeIds: readonly string[], groupId: string | null): Promise<void> {
  if (volumeIds.length === 0) return;
  await tx`
    UPDATE volumes SET group_id = ${groupId},
      consistencygroup_id = (SELECT g.id FROM groups g JOIN group_types t ON t.id = g.group_type_id WHERE g.id = ${groupId} AND t.name = ${CG_TYPE}),
      updated_at = now()
    WHERE id = ANY(${volumeIds as string[]}::uuid[])`;
}

/** The id of the consistency groups' type (default_cgsnapshot_type, made by the migration). */
export async function consistencyGroupTypeId(sql: Exec): Promise<string | undefined> {
  const [row] = await sql<{ id: string }[]>`SELECT id FROM group_types WHERE name = ${CG_TYPE}`;
  return row?.id;
}
