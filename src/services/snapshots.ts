/**
 * Snapshot operations, independent of HTTP.
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
import { historyOf, type TransitionRecord } from '../../db/history.ts';
import { MarkerNotFound } from '../../db/listing.ts';
import { findSnapshot, insertSnapshot, listSnapshots, updateSnapshot, type SnapshotPatch, type SnapshotQuery, type SnapshotRecord } from '../../db/snapshots.ts';
import { findVolume } from '../../db/volumes.ts';
import type { SnapshotEvent } from '../../machines/snapshot.ts';
import type { Enforcer, Outcome } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';

export interface NewSnapshotInput {
  volumeId: string;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
}

export class SnapshotService {
  constructor(
    private readonly sql: Sql,
    private readonly enforcer: Enforcer,
  ) {}

  async create(caller: Caller, input: NewSnapshotInput): Promise<SnapshotRecord> {
    const volume = await findVolume(this.sql, input.volumeId, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id: input.volumeId });
    const id = randomUUID();
    const opts = { actor: actorOf(caller), requestId: caller.requestId };
    await this.sql.begin(async (tx) => {
      const taken = await this.enforcer.acquire(
        tx,
        { type: 'volume', id: volume.id },
        { type: 'SNAPSHOT_BEGIN' },
        { type: 'snapshot', id },
        ['reader', 'dependent'],
        opts,
      );
      if (!taken.ok) throw refusalError(taken);
      await insertSnapshot(tx, {
        id,
        project_id: caller.projectId,
        user_id: caller.userId,
        volume_id: volume.id,
        name: input.name,
        description: input.description,
        metadata: input.metadata,
      });
      // The snapshot's size is the volume's as the CAS saw it: no extend can
      // run while the volume has a reader.
      await this.enforcer.create(tx, { type: 'snapshot', id }, { readers: 0, size: taken.row.size }, opts);
    });
    return (await findSnapshot(this.sql, id))!;
  }

  async get(caller: Caller, id: string): Promise<SnapshotRecord> {
    const snapshot = await findSnapshot(this.sql, id, scopeOf(caller));
    if (!snapshot) throw new ApiError('SnapshotNotFound', { id });
    return snapshot;
  }

  async list(query: SnapshotQuery) {
    try {
      return await listSnapshots(this.sql, query);
    } catch (err) {
      if (err instanceof MarkerNotFound) throw new ApiError('InvalidInput', { reason: `marker ${err.marker} not found` });
      throw err;
    }
  }

  async update(caller: Caller, id: string, patch: SnapshotPatch): Promise<SnapshotRecord> {
    const snapshot = await updateSnapshot(this.sql, id, patch, scopeOf(caller));
    if (!snapshot) throw new ApiError('SnapshotNotFound', { id });
    return snapshot;
  }

  async send(caller: Caller, id: string, event: SnapshotEvent, ifMatch?: number): Promise<Outcome & { ok: true }> {
    if (!caller.isAdmin) await this.get(caller, id);
    const outcome = await this.enforcer.apply(this.sql, { type: 'snapshot', id }, event, {
      actor: actorOf(caller),
      requestId: caller.requestId,
      version: ifMatch,
    });
    if (!outcome.ok) throw refusalError(outcome, ifMatch);
    return outcome;
  }

  history(caller: Caller, id: string): Promise<TransitionRecord[]> {
    return this.get(caller, id).then(() => historyOf(this.sql, 'snapshot', id));
  }
}
