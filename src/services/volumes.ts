/**
 * Volume operations, independent of HTTP. Every state change is one event
 * through the enforcer; data changes (name, description, metadata) are
 * plain updates. A refusal becomes the API error the client sees.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { historyOf, type TransitionRecord } from '../../db/history.ts';
import { MarkerNotFound } from '../../db/listing.ts';
import { findVolume, insertVolume, listVolumes, updateVolume, type VolumePatch, type VolumeQuery, type VolumeRecord } from '../../db/volumes.ts';
import type { VolumeEvent } from '../../machines/volume.ts';
import type { Enforcer, Outcome } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';

export interface NewVolumeInput {
  size: number;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
}

export class VolumeService {
  constructor(
    private readonly sql: Sql,
    private readonly enforcer: Enforcer,
  ) {}

  /** Insert the volume and its state row (initial state, pending for a scheduler) in one transaction. */
  async create(caller: Caller, input: NewVolumeInput): Promise<VolumeRecord> {
    const id = randomUUID();
    await this.sql.begin(async (tx) => {
      await insertVolume(tx, {
        id,
        project_id: caller.projectId,
        user_id: caller.userId,
        name: input.name,
        description: input.description,
        metadata: input.metadata,
      });
      await this.enforcer.create(
        tx,
        { type: 'volume', id },
        { readers: 0, dependents: 0, size: input.size, operation: null },
        { actor: actorOf(caller), requestId: caller.requestId },
      );
    });
    return (await findVolume(this.sql, id))!;
  }

  async get(caller: Caller, id: string): Promise<VolumeRecord> {
    const volume = await findVolume(this.sql, id, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id });
    return volume;
  }

  async list(query: VolumeQuery) {
    try {
      return await listVolumes(this.sql, query);
    } catch (err) {
      if (err instanceof MarkerNotFound) throw new ApiError('InvalidInput', { reason: `marker ${err.marker} not found` });
      throw err;
    }
  }

  async update(caller: Caller, id: string, patch: VolumePatch): Promise<VolumeRecord> {
    const volume = await updateVolume(this.sql, id, patch, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id });
    return volume;
  }

  /**
   * Send one event to a volume the caller may see. Admins act by id on any
   * project (as in Cinder), so for them the CAS itself finds the row; for
   * others a scoped read first turns another project's volume into 404.
   */
  async send(caller: Caller, id: string, event: VolumeEvent, ifMatch?: number): Promise<Outcome & { ok: true }> {
    if (!caller.isAdmin) await this.get(caller, id);
    const outcome = await this.enforcer.apply(this.sql, { type: 'volume', id }, event, {
      actor: actorOf(caller),
      requestId: caller.requestId,
      version: ifMatch,
    });
    if (!outcome.ok) throw refusalError(outcome, ifMatch);
    return outcome;
  }

  history(caller: Caller, id: string): Promise<TransitionRecord[]> {
    return this.get(caller, id).then(() => historyOf(this.sql, 'volume', id));
  }
}
