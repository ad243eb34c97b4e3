/**
 * Snapshot operations, independent of HTTP (the shared ones are in
 * resources.ts).
 *
 * Taking a snapshot touches two rows, in one transaction: the volume's
 * CAS (SNAPSHOT_BEGIN: the volume must be available; it gains a reader for
 * as long as the snapshot is being taken, and a dependent for as long as
 * the snapshot exists) with the leases that record it, and the snapshot's
 * insert. Real Cinder instead inserts the snapshot, re-reads the volume
 * and deletes the snapshot if the volume changed meanwhile; here the
 * volume cannot change between the check and the insert.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { snapshotTable, volumeTable, volumeTypeIdOf, type SnapshotRecord } from '../../db/resources.ts';
import { transaction } from '../../db/tx.ts';
import type { NewSnapshotRow, SnapshotRow } from '../../db/schema.ts';
import type { Enforcer } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';
import { ResourceService } from './resources.ts';

export type { SnapshotRecord };

export interface NewSnapshotInput {
  volumeId: string;
  /** an in-use volume may be snapshotted (force=True, or microversion ≥ 3.66) */
  force: boolean;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
}

export class SnapshotService extends ResourceService<'snapshot', SnapshotRow, NewSnapshotRow> {
  constructor(sql: Sql, enforcer: Enforcer) {
    super(sql, enforcer, 'snapshot', snapshotTable, 'SnapshotNotFound');
  }

  async create(caller: Caller, input: NewSnapshotInput): Promise<SnapshotRecord> {
    const volume = await volumeTable.find(this.sql, input.volumeId, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id: input.volumeId });
    const id = randomUUID();
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    // Read back in the transaction: once it commits, another request may delete the snapshot before a later read.
    return transaction(this.sql, { rows: [{ type: 'volume', id: volume.id }] }, async (tx) => {
      const taken = await this.enforcer.acquire(
        tx,
        { type: 'volume', id: volume.id },
        { type: 'SNAPSHOT_BEGIN', force: input.force },
        { type: 'snapshot', id },
        ['reader', 'dependent'],
        opts,
      );
      if (!taken.ok) throw refusalError(taken);
      // The volume's type as of its CAS: a retype cannot end while this transaction holds the row.
      const typeId = await volumeTypeIdOf(tx, volume.id);
      await snapshotTable.insert(tx, {
        id,
        project_id: caller.projectId,
        user_id: caller.userId,
        volume_id: volume.id,
        volume_type_id: typeId,
        name: input.name,
        description: input.description,
        metadata: input.metadata,
      });
      // The snapshot's size is the volume's as the CAS saw it: no extend can
      // run while the volume has a reader.
      await this.enforcer.create(tx, { type: 'snapshot', id }, { readers: 0, size: taken.row.size }, opts);
      const created = (await snapshotTable.find(tx, id))!;
      // Last: the project's usage rows stay locked until the commit (as in VolumeService.create).
      await this.enforcer.admit(tx, 'snapshot', caller.projectId, { size: taken.row.size }, typeId);
      return created;
    });
  }
}
