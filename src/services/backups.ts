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
import { SQLSTATE, sqlState } from '../../db/sqlstate.ts';
import type { BackupRow, NewBackupRow } from '../../db/schema.ts';
import { incrementalParent } from '../../db/backups.ts';
import type { Enforcer } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';
import { ResourceService } from './resources.ts';
import { MODELS } from '../../machines/index.ts';
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

/** What import_record reads from a record (src/api/backups.ts decodes and checks it). */
export interface ImportedRecord {
  id: string;
  size: number;
  name: string | null;
  description: string | null;
  container: string;
  serviceMetadata: string;
  objectCount: number;
  parentId: string | null;
  dataTimestamp: Date | null;
}

/** The volume of an imported backup, as Cinder records it. */
const NO_VOLUME = '00000000-0000-0000-0000-000000000000';

/** What export_record names as the record's service: the layout is Cinder's posix driver's. */
export const BACKUP_SERVICE = 'cinder.backup.drivers.posix.PosixBackupDriver';

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
        // Its volume's metadata as read above, for a restore to give back (metadata is data: no CAS orders it).
        volume_metadata: volume.metadata,
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

  /**
   * export_record (admin): the backup's row as Cinder encodes it (a
   * base64 JSON of its fields, Cinder's names), enough for import_record
   * to bring it back into another volstate on the same store after the
   * loss of this database.
   */
  async exportRecord(caller: Caller, id: string): Promise<{ backup_service: string; backup_url: string }> {
    const b = await this.get(caller, id);
    const status = MODELS.backup.index.statusOf(b.state);
    if (status !== 'available') throw new ApiError('InvalidBackup', { reason: `Backup status must be available, not ${status}.` });
    const record = {
      id: b.id,
      display_name: b.name,
      display_description: b.description,
      container: b.container,
      service_metadata: b.service_metadata,
      service: BACKUP_SERVICE,
      size: b.size,
      object_count: b.object_count,
      volume_id: b.volume_id,
      snapshot_id: b.snapshot_id,
      parent_id: b.parent_id,
      availability_zone: b.availability_zone,
      metadata: b.metadata,
      data_timestamp: b.data_timestamp.toISOString(),
      created_at: b.created_at.toISOString(),
    };
    return { backup_service: BACKUP_SERVICE, backup_url: Buffer.from(JSON.stringify(record)).toString('base64') };
  }

  /**
   * import_record (admin): a backup row for objects already in the store,
   * in the caller's project, `creating.import` until a worker has checked
   * every object (then `available`, or `error` naming what is missing). An
   * incremental record's parent must be here and live: it is held by a
   * dependent lease, as any incremental's.
   */
  async importRecord(caller: Caller, record: ImportedRecord): Promise<BackupRecord> {
    if (await backupTable.existed(this.sql, record.id)) {
      throw new ApiError('InvalidBackup', {
        reason: `Backup already exists in database (a backup with id ${record.id} exists, or existed and is not purged yet).`,
      });
    }
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    const rows = record.parentId ? [{ type: 'backup', id: record.parentId }] : [];
    const exists = () =>
      new ApiError('InvalidBackup', {
        reason: `Backup already exists in database (a backup with id ${record.id} exists, or existed and is not purged yet).`,
      });
    if (await backupTable.existed(this.sql, record.id)) throw exists();
    return transaction(this.sql, { rows }, async (tx) => {
      if (record.parentId) {
        const child = await this.enforcer.acquire(
          tx,
          { type: 'backup', id: record.parentId },
          { type: 'CHILD_BEGIN' },
          { type: 'backup', id: record.id },
          ['dependent'],
          opts,
        );
        if (!child.ok)
          throw new ApiError('InvalidBackup', { reason: `the record's parent backup ${record.parentId} is not here: import it first.` });
      }
      await backupTable.insert(tx, {
        id: record.id,
        project_id: caller.projectId,
        user_id: caller.userId,
        // As Cinder imports: no volume of this database is its source (so no incremental of a volume takes it as parent).
        volume_id: NO_VOLUME,
        snapshot_id: null,
        parent_id: record.parentId,
        name: record.name,
        description: record.description,
        container: record.container,
        service_metadata: record.serviceMetadata,
        object_count: record.objectCount,
        metadata: {},
        ...(record.dataTimestamp ? { data_timestamp: record.dataTimestamp } : {}),
      });
      await this.enforcer.create(tx, { type: 'backup', id: record.id }, { readers: 0, dependents: 0, size: record.size }, opts);
      const importing = await this.enforcer.apply(tx, { type: 'backup', id: record.id }, { type: 'IMPORT' }, opts);
      if (!importing.ok) throw refusalError(importing);
      const created = (await backupTable.find(tx, record.id))!;
      await this.enforcer.admit(tx, 'backup', caller.projectId, { size: record.size }, null);
      return created;
    }).catch((err: unknown) => {
      // Two imports of one record at once: the second's insert meets the first's row.
      throw sqlState(err) === SQLSTATE.UNIQUE_VIOLATION ? exists() : err;
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
      // The volume's CAS first: a volume that is not available may already hold this backup as a
      // reader (a volume being created from it), and the lease below would then be its second,
      // which the leases' key refuses with an error, not a refusal (a 500 the harness met). The
      // backup's size never changes, so the one read above is the one the guard needs.
      const restoring = await this.enforcer.apply(
        tx,
        { type: 'volume', id: volumeId },
        { type: 'RESTORE_BACKUP', backup_id: id, backup_size: backup.size },
        opts,
      );
      if (!restoring.ok) throw refusalError(restoring);
      const reading = await this.enforcer.acquire(
        tx,
        { type: 'backup', id },
        { type: 'RESTORE_BEGIN' },
        { type: 'volume', id: volumeId },
        ['reader'],
        opts,
      );
      if (!reading.ok) throw refusalError(reading);
    });
    return { backup, volume };
  }
}

/** What a restore answers, after a lost connection whose change committed. */
export type Restored = { backup: BackupRecord; volume: VolumeRecord };

function noParent(): ApiError {
  return new ApiError('InvalidBackup', { reason: 'No backups available to do an incremental backup.' });
}
