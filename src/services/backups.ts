/**
 * Backup operations, independent of HTTP (the shared ones are in
 * resources.ts).
 *
 * Making a backup touches up to three rows, in one transaction, each by
 * its own CAS: its source (the volume, or the snapshot) gains a `backup`
 * lease (BACKUP_BEGIN: the volume must be available, or in-use with
 * force), an incremental's parent gains a `dependent` lease (CHILD_BEGIN),
 * and the backup is inserted with its state row and its quota. Real
 * Cinder blind-writes the volume's status to `backing-up`, then inserts;
 * here nothing of it happens unless all of it does.
 *
 * A restore is the target volume's CAS (RESTORE_BACKUP: available, big
 * enough, not read) and the backup's (RESTORE_BEGIN: a reader lease held by
 * the volume), in one transaction; a restore with no target volume creates
 * one from the backup (VolumeService.create with backupId).
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { backupTable, snapshotTable, volumeTable, type BackupRecord } from '../../db/resources.ts';
import { transaction } from '../../db/tx.ts';
import type { BackupRow, NewBackupRow } from '../../db/schema.ts';
import { incrementalParent, volumeMetadataOf } from '../../db/backups.ts';
import type { Enforcer } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';
import { ResourceService } from './resources.ts';
import type { VolumeRecord, VolumeService } from './volumes.ts';

export type { BackupRecord };

export interface NewBackupInput {
  volumeId: string;
  snapshotId: string | null;
  incremental: boolean;
  /** an in-use volume may be backed up */
  force: boolean;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  container: string | null;
  availabilityZone: string | null;
}

export interface RestoreInput {
  /** null: restore into a new volume */
  volumeId: string | null;
  /** the new volume's name (default `restore_backup_<id>`) */
  name: string | null;
}

export class BackupService extends ResourceService<'backup', BackupRow, NewBackupRow> {
  constructor(
    sql: Sql,
    enforcer: Enforcer,
    private readonly volumes: VolumeService,
  ) {
    super(sql, enforcer, 'backup', backupTable, 'BackupNotFound');
  }

  async create(caller: Caller, input: NewBackupInput): Promise<BackupRecord> {
    const volume = await volumeTable.find(this.sql, input.volumeId, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id: input.volumeId });
    let dataTimestamp: Date | undefined;
    if (input.snapshotId) {
      const snapshot = await snapshotTable.find(this.sql, input.snapshotId, scopeOf(caller));
      if (!snapshot) throw new ApiError('SnapshotNotFound', { id: input.snapshotId });
      if (snapshot.volume_id !== volume.id) {
        throw new ApiError('InvalidVolume', { reason: `snapshot ${snapshot.id} is not a snapshot of volume ${volume.id}.` });
      }
      // The data is the snapshot's: as old as the snapshot.
      dataTimestamp = snapshot.created_at;
    }
    let parentId: string | null = null;
    if (input.incremental) parentId = (await incrementalParent(this.sql, volume.id, caller.projectId, dataTimestamp)) ?? null;
    if (input.incremental && !parentId) throw noParent();
    const id = randomUUID();
    const source = input.snapshotId ? { type: 'snapshot' as const, id: input.snapshotId } : { type: 'volume' as const, id: volume.id };
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    const rows = parentId ? [source, { type: 'backup', id: parentId }] : [source];
    return transaction(this.sql, { rows }, async (tx) => {
      const taken =
        source.type === 'snapshot'
          ? await this.enforcer.acquire(tx, source, { type: 'BACKUP_BEGIN' }, { type: 'backup', id }, ['backup'], opts)
          : await this.enforcer.acquire(tx, source, { type: 'BACKUP_BEGIN', force: input.force }, { type: 'backup', id }, ['backup'], opts);
      if (!taken.ok) throw refusalError(taken);
      if (parentId) {
        const child = await this.enforcer.acquire(
          tx,
          { type: 'backup', id: parentId },
          { type: 'CHILD_BEGIN' },
          { type: 'backup', id },
          ['dependent'],
          opts,
        );
        // The parent chosen was deleted or reset meanwhile: as if there were none.
        if (!child.ok) throw noParent();
      }
      // The volume's metadata as of its CAS, for a restore to give back.
      const volumeMetadata = (await volumeMetadataOf(tx, volume.id)) ?? {};
      await backupTable.insert(tx, {
        id,
        project_id: caller.projectId,
        user_id: caller.userId,
        volume_id: volume.id,
        snapshot_id: input.snapshotId,
        parent_id: parentId,
        name: input.name,
        description: input.description,
        metadata: input.metadata,
        volume_metadata: volumeMetadata,
        container: input.container,
        availability_zone: input.availabilityZone ?? volume.availability_zone,
        ...(dataTimestamp ? { data_timestamp: dataTimestamp } : {}),
      });
      // Its size is its source's as the CAS saw it (a snapshot's never changes; a volume's extend
      // after this does not change what the backup reads: the driver's still image).
      await this.enforcer.create(tx, { type: 'backup', id }, { readers: 0, dependents: 0, size: taken.row.size }, opts);
      const created = (await backupTable.find(tx, id))!;
      // Last: the project's usage rows stay locked until the commit (as in VolumeService.create).
      await this.enforcer.admit(tx, 'backup', caller.projectId, { size: taken.row.size }, null);
      return created;
    });
  }

  /** The backup and the volume of a restore that committed. */
  async restored(caller: Caller, id: string, volumeId: string): Promise<Restored> {
    return { backup: await this.get(caller, id), volume: await this.volumes.get(caller, volumeId) };
  }

  /** POST /backups/{id}/restore: onto an existing volume, or into a new one. */
  async restore(caller: Caller, id: string, input: RestoreInput): Promise<Restored> {
    const backup = await this.get(caller, id);
    if (input.volumeId === null) {
      const volume = await this.volumes.create(caller, {
        size: null,
        name: input.name ?? `restore_backup_${id}`,
        description: 'auto-created_from_restore_from_backup',
        metadata: {},
        multiattach: false,
        backupId: id,
      });
      return { backup, volume };
    }
    const volumeId = input.volumeId;
    const volume = await volumeTable.find(this.sql, volumeId, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id: volumeId });
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    const rows = [
      { type: 'backup', id },
      { type: 'volume', id: volumeId },
    ];
    await transaction(this.sql, { rows }, async (tx) => {
      const reading = await this.enforcer.acquire(
        tx,
        { type: 'backup', id },
        { type: 'RESTORE_BEGIN' },
        { type: 'volume', id: volumeId },
        ['reader'],
        opts,
      );
      if (!reading.ok) throw refusalError(reading);
      const restoring = await this.enforcer.apply(
        tx,
        { type: 'volume', id: volumeId },
        { type: 'RESTORE_BACKUP', backup_id: id, backup_size: reading.row.size },
        opts,
      );
      if (!restoring.ok) throw refusalError(restoring);
    });
    return { backup, volume };
  }
}

/** What a restore answers, after a lost connection whose change committed. */
export type Restored = { backup: BackupRecord; volume: VolumeRecord };

function noParent(): ApiError {
  return new ApiError('InvalidBackup', { reason: 'No backups available to do an incremental backup.' });
}
