/**
 * Volume operations, independent of HTTP (the shared ones are in
 * resources.ts). Every operation that touches more than one row does it
 * in one transaction, each row by its own CAS: all of it happens, or a
 * refusal leaves nothing behind.
 */
import { randomUUID } from 'node:crypto';
import type { Executor, Sql } from '../../db/connect.ts';
import { backupTable, snapshotTable, volumeTable, type VolumeRecord } from '../../db/resources.ts';
import { consistencyGroupTypeId, groupTable } from '../../db/groups.ts';
import type { NewVolumeRow, VolumeRow } from '../../db/schema.ts';
import { transaction } from '../../db/tx.ts';
import { DEFAULT_TYPE, findType, typeRef } from '../../db/volume-types.ts';
import { VOLUME_CREATE, type VolumeCreateAsked, type VolumeCreateData } from '../../db/volume-create.ts';
import { MODELS } from '../../machines/index.ts';
import type { Applied, Enforcer } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import type { AttachmentService } from './attachments.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';
import { ResourceService } from './resources.ts';

export type { VolumeRecord };

export interface NewVolumeInput {
  /** GiB; null: the size of the snapshot or source volume */
  size: number | null;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  multiattach: boolean;
  /** the volume type, by id or name; null: the default type */
  volumeType?: string | null;
  /** create from this snapshot */
  snapshotId?: string | null;
  /** clone this volume */
  sourceVolid?: string | null;
  /** restore this backup into the new volume (3.47; a restore with no volume_id) */
  backupId?: string | null;
  /** create it in this group (3.13): it joins as a member in this transaction (the group's MEMBER_ADD) */
  groupId?: string | null;
}

const NOT_FOUND = { snapshot: 'SnapshotNotFound', volume: 'VolumeNotFound', backup: 'BackupNotFound' } as const;

export class VolumeService extends ResourceService<'volume', VolumeRow, NewVolumeRow> {
  constructor(sql: Sql, enforcer: Enforcer) {
    super(sql, enforcer, 'volume', volumeTable, 'VolumeNotFound');
  }

  /**
   * Insert the volume and its state row (initial state: pending for a
   * scheduler) in one transaction. From a snapshot or a clone, the source
   * is held as a reader in the same transaction (its CAS and the lease),
   * until the create ends whichever way: concurrent clones of one source
   * are all allowed, and the source cannot be deleted under them.
   */
  async create(caller: Caller, input: NewVolumeInput): Promise<VolumeRecord> {
    const sourceRef = input.snapshotId
      ? { type: 'snapshot', id: input.snapshotId }
      : input.sourceVolid
        ? { type: 'volume', id: input.sourceVolid }
        : input.backupId
          ? { type: 'backup', id: input.backupId }
          : undefined;
    const groupRef = input.groupId ? { type: 'group', id: input.groupId } : undefined;
    const lockRows = [sourceRef, groupRef].filter((r): r is { type: string; id: string } => r !== undefined);
    // Nothing to lock (no source, no group): one statement, alone, unless a limit needs judging.
    if (lockRows.length === 0) {
      const made = await this.createIn(this.sql, caller, input, true);
      if (made) return made;
    }
    // The answer is made in the transaction: once it commits, another request may delete the volume before a later read.
    return transaction(this.sql, { rows: lockRows }, (tx) => this.createIn(tx, caller, input));
  }

  /**
   * The create's work inside a transaction the caller runs, which has locked
   * the source's and the group's rows (a group created from a source makes
   * all its volumes in one: src/services/groups.ts).
   */
  async createIn(tx: Executor, caller: Caller, input: NewVolumeInput): Promise<VolumeRecord>;
  /** `alone`: on the pool, outside a transaction (nothing to lock); undefined when a limit needs one. */
  async createIn(tx: Executor, caller: Caller, input: NewVolumeInput, alone: true): Promise<VolumeRecord | undefined>;
  async createIn(tx: Executor, caller: Caller, input: NewVolumeInput, alone = false): Promise<VolumeRecord | undefined> {
    const id = randomUUID();
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    let size = input.size;
    // The group first: a volume joins it only while it is creating or available (its MEMBER_ADD), of one of its types.
    const group = input.groupId ? await groupTable.find(tx, input.groupId, scopeOf(caller)) : undefined;
    if (input.groupId && !group) throw new ApiError('GroupNotFound', { id: input.groupId });
    const source = input.snapshotId
      ? {
          type: 'snapshot' as const,
          id: input.snapshotId,
          noun: 'snapshot',
          found: await snapshotTable.find(tx, input.snapshotId, scopeOf(caller)),
        }
      : input.sourceVolid
        ? {
            type: 'volume' as const,
            id: input.sourceVolid,
            noun: 'source volume',
            found: await volumeTable.find(tx, input.sourceVolid, scopeOf(caller)),
          }
        : input.backupId
          ? {
              type: 'backup' as const,
              id: input.backupId,
              noun: 'backup',
              found: await backupTable.find(tx, input.backupId, scopeOf(caller)),
            }
          : undefined;
    if (source) {
      if (!source.found) throw new ApiError(NOT_FOUND[source.type], { id: source.id });
      // A backup is read by a restore (several at once, each a reader); a volume or snapshot by a clone.
      const taken = await this.enforcer.acquire(
        tx,
        { type: source.type, id: source.id },
        { type: source.type === 'backup' ? 'RESTORE_BEGIN' : 'READ_BEGIN' },
        { type: 'volume', id },
        ['reader'],
        opts,
      );
      if (!taken.ok) throw refusalError(taken);
      // The source's size as its CAS saw it: it cannot change while read.
      size ??= taken.row.size;
      if (size < taken.row.size) {
        throw new ApiError('InvalidInput', {
          reason: `Volume size '${size}'GB cannot be smaller than the ${source.noun} size ${taken.row.size}GB. They must be >= original ${source.noun} size.`,
        });
      }
    }
    if (size === null) throw new ApiError('InvalidField', { field: 'size', value: 'None', reason: 'size is required.' });
    // A consistency group's members show it as consistencygroup_id too (Cinder's view).
    const cgType = group ? await consistencyGroupTypeId(tx) : undefined;
    const ref = typeRef(input.volumeType);
    // The type, the limit, the data row and the state row: one statement (db/volume-create.ts).
    // A create that restores a backup says so from the start: its step is the backup lane's
    // (machines/volume.ts fromBackup). Its statement counts the volume against the project's
    // quota when every resource is unlimited (the default).
    const { created, parts } = await this.enforcer.createWith(
      tx,
      { type: 'volume', id },
      { size, operation: input.backupId ? { backup_id: input.backupId } : null },
      opts,
      VOLUME_CREATE,
      {
        project_id: caller.projectId,
        user_id: caller.userId,
        name: input.name,
        description: input.description,
        metadata: input.metadata,
        snapshot_id: input.snapshotId ?? null,
        source_volid: input.sourceVolid ?? null,
        backup_id: input.backupId ?? null,
        size,
        multiattach: input.multiattach,
        type_id: ref.id,
        type_name: ref.name,
        scope: scopeOf(caller) ?? null,
        group_id: group?.id ?? null,
        group_type_ids: group ? group.volume_type_ids : null,
        consistencygroup_id: group && group.group_type_id === cgType ? group.id : null,
        alone,
      } satisfies VolumeCreateData,
    );
    const asked = parts.asked as unknown as VolumeCreateAsked;
    if (!created) {
      if (asked.needs_tx) return undefined;
      if (asked.per_volume >= 0 && size > asked.per_volume) throw new ApiError('VolumeSizeExceedsLimit', { size, limit: asked.per_volume });
      if (asked.type_id === null) throw new ApiError('VolumeTypeNotFound', { id: input.volumeType ?? DEFAULT_TYPE });
      // What is left to refuse it (db/volume-create.ts `data`): a type its group does not take.
      if (!group) throw new Error(`volume create ${id}: refused for no reason its statement names`);
      throw new ApiError('InvalidInput', {
        reason: `volume type ${asked.type_name} is not one of group ${group.id}'s volume types; create the volume with one of ${group.volume_type_ids.join(', ')}.`,
      });
    }
    if (group) {
      const joined = await this.enforcer.acquire(
        tx,
        { type: 'group', id: group.id },
        { type: 'MEMBER_ADD' },
        { type: 'volume', id },
        ['member'],
        opts,
      );
      if (!joined.ok) throw refusalError(joined);
    }
    const row = parts.data as unknown as VolumeRow;
    // A limit to judge: counted by `admit`, whose statement judges it on the locked usage row.
    if (!created.counted) await this.enforcer.admit(tx, 'volume', caller.projectId, { size }, row.volume_type_id);
    // The volume as a read would show it, from the two rows just written (no read back).
    return volumeTable.withState(row, created);
  }

  /**
   * os-extend: the EXTEND CAS, whose statement reserves the growth within
   * the gigabytes quotas and the project's largest volume
   * (per_volume_gigabytes, as Cinder checks it); run alone, one statement,
   * when neither has a limit to judge (src/enforcer.ts account says the 413).
   */
  async extend(caller: Caller, id: string, to: { newSize: number; inUse: boolean }, ifMatch?: number): Promise<Applied> {
    return this.send(caller, id, { type: 'EXTEND', new_size: to.newSize, in_use: to.inUse }, ifMatch);
  }

  /** A volume type the caller may use, by id or name (an admin may use any). */
  visibleType(caller: Caller, ref: string) {
    return findType(this.sql, ref, scopeOf(caller));
  }

  /**
   * DELETE, with ?cascade (its snapshots too) and ?force (admin). A
   * cascade is one transaction: the volume's CAS first (so no new snapshot
   * can start), then each snapshot's; any refusal undoes all of it. The
   * volume's backend delete then waits for its snapshots to be gone.
   */
  async remove(caller: Caller, id: string, how: { cascade: boolean; force: boolean }, ifMatch?: number): Promise<Applied> {
    if (!how.cascade) return this.send(caller, id, { type: how.force ? 'FORCE_DELETE' : 'DELETE' }, ifMatch);
    if (!caller.isAdmin) await this.get(caller, id);
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    return transaction(this.sql, { rows: [{ type: 'volume', id }], snapshotsOf: [id] }, async (tx) => {
      const moved = await this.enforcer.apply(
        tx,
        { type: 'volume', id },
        { type: how.force ? 'FORCE_DELETE_CASCADE' : 'DELETE_CASCADE' },
        { ...opts, version: ifMatch },
      );
      if (!moved.ok) throw refusalError(moved, ifMatch);
      const snapshots = await snapshotTable.list(tx, {
        projectId: undefined,
        filters: { volume_id: id },
        sort: [{ key: 'id', dir: 'asc' }],
        limit: 10_000,
      });
      for (const snap of snapshots.rows) {
        // A snapshot already being deleted is what was asked for.
        if (MODELS.snapshot.index.meta(snap.state).step === 'delete') continue;
        const outcome = await this.enforcer.apply(
          tx,
          { type: 'snapshot', id: snap.id },
          { type: how.force ? 'FORCE_DELETE' : 'DELETE' },
          opts,
        );
        if (!outcome.ok) throw refusalError(outcome);
      }
      return moved;
    });
  }

  /**
   * Revert to a snapshot (3.40): the snapshot's CAS (available → restoring,
   * held as the volume's reader) and the volume's (available → reverting),
   * in one transaction, or neither. Real Cinder runs them one after the
   * other and can leave the volume stuck in `reverting`.
   */
  async revert(caller: Caller, id: string, snapshotId: string): Promise<Applied> {
    const volume = await this.get(caller, id);
    const snapshot = await snapshotTable.find(this.sql, snapshotId, scopeOf(caller));
    if (!snapshot) throw new ApiError('SnapshotNotFound', { id: snapshotId });
    if (snapshot.volume_id !== volume.id) {
      throw new ApiError('InvalidInput', { reason: `snapshot ${snapshotId} is not a snapshot of volume ${id}.` });
    }
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    const rows = [
      { type: 'snapshot', id: snapshotId },
      { type: 'volume', id },
    ];
    return transaction(this.sql, { rows }, async (tx) => {
      const restoring = await this.enforcer.acquire(
        tx,
        { type: 'snapshot', id: snapshotId },
        { type: 'RESTORE_BEGIN' },
        { type: 'volume', id },
        ['reader'],
        opts,
      );
      if (!restoring.ok) throw refusalError(restoring);
      const reverting = await this.enforcer.apply(tx, { type: 'volume', id }, { type: 'REVERT', snapshot_id: snapshotId }, opts);
      if (!reverting.ok) throw refusalError(reverting);
      // Cinder's conditions, checked with both rows locked by their CAS:
      // the latest snapshot, of the same size.
      const [latest] = await snapshotTable
        .list(tx, { projectId: undefined, filters: { volume_id: id }, sort: [{ key: 'created_at', dir: 'desc' }], limit: 1 })
        .then((p) => p.rows);
      if (latest?.id !== snapshotId) {
        throw new ApiError('InvalidSnapshot', { reason: `a volume can only be reverted to its latest snapshot, which is ${latest?.id}.` });
      }
      if (restoring.row.size !== reverting.row.size) {
        throw new ApiError('InvalidVolume', {
          reason: `the volume (${reverting.row.size} GiB) and the snapshot (${restoring.row.size} GiB) must have the same size to revert.`,
        });
      }
      return reverting;
    });
  }

  /**
   * os-reset_status. With attach_status=detached every attachment is
   * detached first, in the same transaction (as Cinder soft-detaches them),
   * so that `available` is true of the volume afterwards.
   */
  async resetStatus(
    caller: Caller,
    id: string,
    reset: { status: string | undefined; detach: boolean },
    attachments: AttachmentService,
    ifMatch?: number,
  ): Promise<void> {
    if (!reset.detach) {
      if (reset.status !== undefined) await this.send(caller, id, { type: 'RESET_STATUS', status: reset.status }, ifMatch);
      return;
    }
    if (!caller.isAdmin) await this.get(caller, id);
    await transaction(this.sql, { rows: [{ type: 'volume', id }], attachmentsOf: [id] }, async (tx) => {
      await attachments.detachAll(tx, caller, id);
      if (reset.status === undefined) return;
      const outcome = await this.enforcer.apply(
        tx,
        { type: 'volume', id },
        { type: 'RESET_STATUS', status: reset.status },
        {
          actor: actorOf(caller),
          requestId: caller.requestId,
          version: ifMatch,
        },
      );
      if (!outcome.ok) throw refusalError(outcome, ifMatch);
    });
  }

  /** os-set_bootable, os-update_readonly_flag: data, not state. */
  async setFlags(caller: Caller, id: string, flags: { bootable?: boolean; readonly?: boolean }): Promise<VolumeRecord> {
    return this.update(caller, id, flags);
  }
}
