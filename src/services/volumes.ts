/**
 * Volume operations, independent of HTTP (the shared ones are in
 * resources.ts).
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { volumeTable, type VolumeRecord } from '../../db/resources.ts';
import type { NewVolumeRow, VolumeRow } from '../../db/schema.ts';
import type { Enforcer } from '../enforcer.ts';
import { actorOf, type Caller } from './caller.ts';
import { ResourceService } from './resources.ts';

export interface NewVolumeInput {
  size: number;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
}

export class VolumeService extends ResourceService<'volume', VolumeRow, NewVolumeRow> {
  constructor(sql: Sql, enforcer: Enforcer) {
    super(sql, enforcer, 'volume', volumeTable, 'VolumeNotFound');
  }

  /** Insert the volume and its state row (initial state: pending for a scheduler) in one transaction. */
  async create(caller: Caller, input: NewVolumeInput): Promise<VolumeRecord> {
    const id = randomUUID();
    await this.sql.begin(async (tx) => {
      await volumeTable.insert(tx, {
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
    return (await volumeTable.find(this.sql, id))!;
  }
}
