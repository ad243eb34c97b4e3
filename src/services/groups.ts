/**
 * Groups and group snapshots, independent of HTTP.
 *
 * Where Cinder walks a group's volumes one by one, reading each status and
 * writing it later (cinder/group/api.py; ../shared/reference/cinder-backups-groups.md §4),
 * every operation here that touches a group and its members is ONE
 * transaction that first locks the group's row and its members' rows in
 * the global order of db/tx.ts, then runs each row's CAS:
 *
 * - a group snapshot is the group's SNAPSHOT_BEGIN and every member's
 *   SNAPSHOT_BEGIN with its member snapshot, or nothing: a member being
 *   extended, reverted or deleted refuses the whole request, naming it;
 * - a delete with its volumes is the group's CAS and every member's DELETE;
 * - an update's add_volumes and remove_volumes are the group's UPDATE and
 *   each volume's membership, with each volume's status read under its
 *   row's lock (Cinder's status sets: add from available or in-use, remove
 *   also from error and error_deleting).
 *
 * Membership is the `member` lease a volume holds on its group
 * (machines/group.ts), so the group's `members` count and `volumes.group_id`
 * change together.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { CG_TYPE, findGroupType, type GroupTypeRow } from '../../db/group-types.ts';
import {
  groupMembers,
  groupSnapshotMembers,
  groupSnapshotTable,
  groupTable,
  membersOfGroups,
  setGroupOf,
  type GroupRecord,
  type GroupSnapshotRecord,
} from '../../db/groups.ts';
import { snapshotTable, volumeTable } from '../../db/resources.ts';
import type { GroupRow, GroupSnapshotRow, NewGroupRow, NewGroupSnapshotRow } from '../../db/schema.ts';
import { transaction } from '../../db/tx.ts';
import { typeForCreate } from '../../db/volume-types.ts';
import { MODELS } from '../../machines/index.ts';
import type { Applied, Enforcer } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';
import { ResourceService } from './resources.ts';
import type { VolumeService } from './volumes.ts';

export { CG_TYPE, type GroupRecord, type GroupSnapshotRecord };

export interface NewGroupInput {
  name: string | null;
  description: string | null;
  /** the group type, by id or name */
  groupType: string;
  /** volume types by id or name, at least one */
  volumeTypes: string[];
  availabilityZone: string | null;
}

export interface GroupUpdate {
  name?: string | null;
  description?: string | null;
  add: string[];
  remove: string[];
}

/** Cinder's status sets for a volume joining or leaving a group (group/api.py update). */
const JOINS_FROM = new Set(['available', 'in-use']);
const LEAVES_FROM = new Set(['available', 'in-use', 'error', 'error_deleting']);

const statusOf = (state: string) => MODELS.volume.index.statusOf(state);

export class GroupService extends ResourceService<'group', GroupRow, NewGroupRow> {
  constructor(sql: Sql, enforcer: Enforcer) {
    super(sql, enforcer, 'group', groupTable, 'GroupNotFound');
  }

  /** A group type the caller may use, by id or name, else 404. */
  async groupType(caller: Caller, ref: string): Promise<GroupTypeRow> {
    const type = await findGroupType(this.sql, ref, caller.isAdmin);
    if (!type) throw new ApiError('GroupTypeNotFound', { id: ref });
    return type;
  }

  /** Insert the group and its state row (`creating`, for a worker), counted against `groups`. */
  async create(caller: Caller, input: NewGroupInput): Promise<GroupRecord> {
    if (input.volumeTypes.length === 0) {
      throw new ApiError('InvalidInput', { reason: 'a group needs at least one volume type (volume_types).' });
    }
    const id = randomUUID();
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    return transaction(this.sql, { rows: [] }, async (tx) => {
      // Locked against its deletion until this create commits (db/group-types.ts).
      const type = await findGroupType(tx, input.groupType, caller.isAdmin, 'key share');
      if (!type) throw new ApiError('GroupTypeNotFound', { id: input.groupType });
      const typeIds: string[] = [];
      for (const ref of input.volumeTypes) {
        // Locked against its deletion until this create commits, as a volume create locks its type.
        const vt = await typeForCreate(tx, ref, scopeOf(caller));
        if (!vt) throw new ApiError('VolumeTypeNotFound', { id: ref });
        if (!typeIds.includes(vt.id)) typeIds.push(vt.id);
      }
      await groupTable.insert(tx, {
        id,
        project_id: caller.projectId,
        user_id: caller.userId,
        name: input.name,
        description: input.description,
        group_type_id: type.id,
        volume_type_ids: typeIds,
        availability_zone: input.availabilityZone ?? 'nova',
      });
      await this.enforcer.create(tx, { type: 'group', id }, {}, opts);
      const created = (await groupTable.find(tx, id))!;
      await this.enforcer.admit(tx, 'group', caller.projectId, { size: 0 }, null);
      return created;
    });
  }

  /** Name and description are data; volumes change by the group's UPDATE and their own leases, in one transaction. */
  async change(caller: Caller, id: string, update: GroupUpdate): Promise<void> {
    const group = await this.get(caller, id);
    const both = update.add.filter((v) => update.remove.includes(v));
    if (both.length) throw new ApiError('InvalidInput', { reason: `volume ${both[0]} is in both add_volumes and remove_volumes.` });
    const patch: Partial<GroupRow> = {};
    if (update.name !== undefined) patch.name = update.name;
    if (update.description !== undefined) patch.description = update.description;
    if (update.add.length === 0 && update.remove.length === 0) {
      if (Object.keys(patch).length) await this.update(caller, id, patch);
      return;
    }
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    const volumes = [...update.add, ...update.remove].map((v) => ({ type: 'volume', id: v }));
    await transaction(this.sql, { rows: [{ type: 'group', id }, ...volumes] }, async (tx) => {
      const moved = await this.enforcer.apply(tx, { type: 'group', id }, { type: 'UPDATE' }, opts);
      if (!moved.ok) throw refusalError(moved);
      for (const volumeId of update.add) {
        const v = await volumeTable.find(tx, volumeId, group.project_id);
        if (!v)
          throw new ApiError('InvalidGroup', { reason: `cannot add volume ${volumeId} to group ${id}: no such volume in its project.` });
        if (v.group_id === id) continue;
        if (v.group_id !== null) {
          throw new ApiError('InvalidGroup', { reason: `cannot add volume ${volumeId} to group ${id}: it is in group ${v.group_id}.` });
        }
        if (!JOINS_FROM.has(statusOf(v.state))) {
          throw new ApiError('InvalidVolume', {
            reason: `cannot add volume ${volumeId} to group ${id}: it is '${statusOf(v.state)}', and must be available or in-use.`,
          });
        }
        if (v.volume_type_id === null || !group.volume_type_ids.includes(v.volume_type_id)) {
          throw new ApiError('InvalidVolume', {
            reason: `cannot add volume ${volumeId} to group ${id}: its type ${v.volume_type} is not one of the group's volume types.`,
          });
        }
        const joined = await this.enforcer.acquire(
          tx,
          { type: 'group', id },
          { type: 'MEMBER_ADD' },
          { type: 'volume', id: volumeId },
          ['member'],
          opts,
        );
        if (!joined.ok) throw refusalError(joined);
      }
      for (const volumeId of update.remove) {
        const v = await volumeTable.find(tx, volumeId, group.project_id);
        if (!v || v.group_id !== id) {
          throw new ApiError('InvalidGroup', { reason: `cannot remove volume ${volumeId} from group ${id}: it is not in the group.` });
        }
        if (!LEAVES_FROM.has(statusOf(v.state))) {
          throw new ApiError('InvalidVolume', {
            reason: `cannot remove volume ${volumeId} from group ${id}: it is '${statusOf(v.state)}', and must be available, in-use, error or error_deleting.`,
          });
        }
        // Its membership given back: the `member` lease, by the group's MEMBER_GONE.
        await this.enforcer.release(tx, { type: 'volume', id: volumeId }, ['member'], opts);
      }
      await setGroupOf(tx, update.add, id);
      await setGroupOf(tx, update.remove, null);
      if (Object.keys(patch).length) await groupTable.update(tx, id, patch);
    });
  }

  /**
   * The delete action. Without its volumes: the group must have none (a
   * guard). With them: the group's CAS and every member's DELETE in one
   * transaction; the group is gone once its last volume is.
   */
  async remove(caller: Caller, id: string, deleteVolumes: boolean): Promise<Applied> {
    if (!caller.isAdmin) await this.get(caller, id);
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    if (!deleteVolumes) return this.sendSeen(caller, id, { type: 'DELETE' });
    return transaction(this.sql, { rows: [{ type: 'group', id }], membersOf: [id] }, async (tx) => {
      const moved = await this.enforcer.apply(tx, { type: 'group', id }, { type: 'DELETE_WITH_VOLUMES' }, opts);
      if (!moved.ok) throw refusalError(moved);
      for (const member of await groupMembers(tx, id)) {
        const row = await volumeTable.find(tx, member.id);
        // A member already being deleted is what was asked for.
        if (row && MODELS.volume.index.meta(row.state).step === 'delete') continue;
        const outcome = await this.enforcer.apply(tx, { type: 'volume', id: member.id }, { type: 'DELETE' }, opts);
        if (!outcome.ok) {
          const refused = refusalError(outcome);
          throw new ApiError('InvalidGroup', { reason: `cannot delete group ${id} with its volumes: ${refused.message}` });
        }
      }
      return moved;
    });
  }

  /**
   * create-from-src (3.14): a new group of the source's types, with a volume
   * made from each member snapshot of a group snapshot, or cloned from each
   * member of a source group — every volume or none, in one transaction
   * whose sources are locked first (each new volume holds its source as a
   * reader until its copy is made, so the source cannot be deleted or
   * changed under it). Cinder checks nothing about the source in the API
   * and creates the volumes one by one.
   */
  async createFromSource(
    caller: Caller,
    volumes: VolumeService,
    input: { name: string | null; description: string | null; groupSnapshotId?: string; sourceGroupId?: string },
  ): Promise<GroupRecord> {
    const fromSnapshot = input.groupSnapshotId !== undefined;
    const sourceId = (input.groupSnapshotId ?? input.sourceGroupId)!;
    const source = fromSnapshot
      ? await groupSnapshotTable.find(this.sql, sourceId, scopeOf(caller))
      : await groupTable.find(this.sql, sourceId, scopeOf(caller));
    if (!source) throw new ApiError(fromSnapshot ? 'GroupSnapshotNotFound' : 'GroupNotFound', { id: sourceId });
    const sourceGroup = fromSnapshot ? await groupTable.find(this.sql, (source as GroupSnapshotRecord).group_id) : (source as GroupRecord);
    if (!sourceGroup) throw new ApiError('GroupNotFound', { id: (source as GroupSnapshotRecord).group_id });
    const members = fromSnapshot ? await groupSnapshotMembers(this.sql, sourceId) : [];
    const lock = fromSnapshot
      ? { rows: [{ type: 'group_snapshot', id: sourceId }, ...members.map((m) => ({ type: 'snapshot', id: m.id }))] }
      : { rows: [{ type: 'group', id: sourceId }], membersOf: [sourceId] };
    const id = randomUUID();
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    return transaction(this.sql, lock, async (tx) => {
      const copies: { snapshotId?: string; sourceVolid?: string; typeId: string | null }[] = fromSnapshot
        ? members.map((m) => ({ snapshotId: m.id, typeId: null }))
        : (await groupMembers(tx, sourceId)).map((m) => ({ sourceVolid: m.id, typeId: m.volume_type_id }));
      if (copies.length === 0) {
        throw new ApiError('InvalidGroup', {
          reason: `${fromSnapshot ? 'group snapshot' : 'group'} ${sourceId} has no volumes to create a group from.`,
        });
      }
      await groupTable.insert(tx, {
        id,
        project_id: caller.projectId,
        user_id: caller.userId,
        name: input.name,
        description: input.description,
        group_type_id: sourceGroup.group_type_id,
        volume_type_ids: sourceGroup.volume_type_ids,
        availability_zone: sourceGroup.availability_zone,
        group_snapshot_id: input.groupSnapshotId ?? null,
        source_group_id: input.sourceGroupId ?? null,
      });
      await this.enforcer.create(tx, { type: 'group', id }, {}, opts);
      await this.enforcer.admit(tx, 'group', caller.projectId, { size: 0 }, null);
      for (const copy of copies) {
        const typeId = copy.typeId ?? (await snapshotTable.find(tx, copy.snapshotId!))?.volume_type_id ?? null;
        await volumes.createIn(tx, caller, {
          size: null,
          name: null,
          description: null,
          metadata: {},
          multiattach: false,
          snapshotId: copy.snapshotId ?? null,
          sourceVolid: copy.sourceVolid ?? null,
          volumeType: typeId,
          groupId: id,
        });
      }
      return (await groupTable.find(tx, id))!;
    });
  }

  /** The member ids of several groups (a list page's `volumes`, 3.25). */
  membersOf(ids: readonly string[]): Promise<Map<string, string[]>> {
    return membersOfGroups(this.sql, ids);
  }

  /** The members' ids of a group. */
  members(id: string): Promise<string[]> {
    return groupMembers(this.sql, id).then((rows) => rows.map((r) => r.id));
  }
}

export class GroupSnapshotService extends ResourceService<'group_snapshot', GroupSnapshotRow, NewGroupSnapshotRow> {
  constructor(sql: Sql, enforcer: Enforcer) {
    super(sql, enforcer, 'group_snapshot', groupSnapshotTable, 'GroupSnapshotNotFound');
  }

  /**
   * One transaction: the group snapshot, the group's SNAPSHOT_BEGIN, and for
   * every member volume its SNAPSHOT_BEGIN (in-use allowed, as Cinder) and a
   * member snapshot parked in `creating.group` for the group snapshot's step.
   */
  async create(caller: Caller, input: { groupId: string; name: string | null; description: string | null }): Promise<GroupSnapshotRecord> {
    const group = await groupTable.find(this.sql, input.groupId, scopeOf(caller));
    if (!group) throw new ApiError('GroupNotFound', { id: input.groupId });
    const id = randomUUID();
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    return transaction(this.sql, { rows: [{ type: 'group', id: group.id }], membersOf: [group.id] }, async (tx) => {
      await groupSnapshotTable.insert(tx, {
        id,
        project_id: group.project_id,
        user_id: caller.userId,
        group_id: group.id,
        group_type_id: group.group_type_id,
        name: input.name,
        description: input.description,
      });
      await this.enforcer.create(tx, { type: 'group_snapshot', id }, {}, opts);
      const begun = await this.enforcer.acquire(
        tx,
        { type: 'group', id: group.id },
        { type: 'SNAPSHOT_BEGIN' },
        { type: 'group_snapshot', id },
        ['dependent'],
        opts,
      );
      if (!begun.ok) throw refusalError(begun);
      // The members as of the group's lock: membership changes only under it.
      for (const member of await groupMembers(tx, group.id)) {
        const snapshotId = randomUUID();
        const taken = await this.enforcer.acquire(
          tx,
          { type: 'volume', id: member.id },
          { type: 'SNAPSHOT_BEGIN', force: true },
          { type: 'snapshot', id: snapshotId },
          ['reader', 'dependent'],
          opts,
        );
        if (!taken.ok) {
          const refused = refusalError(taken);
          throw new ApiError(refused.code === 'VolumeIsBusy' ? 'GroupIsBusy' : 'InvalidGroup', {
            reason: `cannot snapshot group ${group.id}: its volume ${member.id} refuses: ${refused.message}`,
          });
        }
        await snapshotTable.insert(tx, {
          id: snapshotId,
          project_id: group.project_id,
          user_id: caller.userId,
          volume_id: member.id,
          volume_type_id: member.volume_type_id,
          name: input.name,
          description: input.description,
          group_snapshot_id: id,
        });
        await this.enforcer.create(tx, { type: 'snapshot', id: snapshotId }, { readers: 0, size: taken.row.size }, opts);
        const parked = await this.enforcer.apply(tx, { type: 'snapshot', id: snapshotId }, { type: 'GROUPED' }, opts);
        if (!parked.ok) throw refusalError(parked);
        const counted = await this.enforcer.acquire(
          tx,
          { type: 'group_snapshot', id },
          { type: 'MEMBER_ADD' },
          { type: 'snapshot', id: snapshotId },
          ['member'],
          opts,
        );
        if (!counted.ok) throw refusalError(counted);
        await this.enforcer.admit(tx, 'snapshot', group.project_id, { size: taken.row.size }, member.volume_type_id);
      }
      return (await groupSnapshotTable.find(tx, id))!;
    });
  }

  /** Its CAS and every member snapshot's DELETE, in one transaction; it is gone with its last member. */
  async remove(caller: Caller, id: string): Promise<Applied> {
    if (!caller.isAdmin) await this.get(caller, id);
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    const members = await groupSnapshotMembers(this.sql, id);
    const snapshots = members.map((m) => ({ type: 'snapshot', id: m.id }));
    return transaction(this.sql, { rows: [{ type: 'group_snapshot', id }, ...snapshots], leaseSourcesOf: snapshots }, async (tx) => {
      const moved = await this.enforcer.apply(tx, { type: 'group_snapshot', id }, { type: 'DELETE' }, opts);
      if (!moved.ok) throw refusalError(moved);
      for (const m of await groupSnapshotMembers(tx, id)) {
        if (MODELS.snapshot.index.meta(m.state).step === 'delete') continue;
        const outcome = await this.enforcer.apply(tx, { type: 'snapshot', id: m.id }, { type: 'DELETE' }, opts);
        if (!outcome.ok) {
          const refused = refusalError(outcome);
          throw new ApiError('InvalidGroupSnapshot', {
            reason: `cannot delete group snapshot ${id}: its snapshot ${m.id} refuses: ${refused.message}`,
          });
        }
      }
      return moved;
    });
  }
}
