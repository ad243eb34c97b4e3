/**
 * QoS specs, independent of HTTP (db/qos.ts holds the statements): each
 * operation answers what it did or throws the Cinder fault that says why
 * not. Deleting specs that volume types use is refused unless forced; a
 * forced delete dissociates them in the same transaction.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { associate, associations, changeQosSpecs, deleteQos, findQos, insertQos, listQos, type QosRow } from '../../db/qos.ts';
import { transaction } from '../../db/tx.ts';
import { ApiError } from '../errors.ts';

export type { QosRow };

export class QosService {
  constructor(private readonly sql: Sql) {}

  list(): Promise<QosRow[]> {
    return listQos(this.sql);
  }

  /** The specs with this id (already checked to be a UUID, lower case), or QosSpecsNotFound. */
  async get(id: string): Promise<QosRow> {
    const found = await findQos(this.sql, id);
    if (!found) throw new ApiError('QosSpecsNotFound', { id });
    return found;
  }

  /** QosSpecsExists if the name is taken. */
  async create(input: Omit<QosRow, 'id'>): Promise<QosRow> {
    const row = { id: randomUUID(), ...input };
    if (!(await insertQos(this.sql, row))) throw new ApiError('QosSpecsExists', { name: row.name });
    return row;
  }

  async setKeys(id: string, specs: Record<string, string>): Promise<void> {
    if ((await changeQosSpecs(this.sql, id, { merge: specs })) === undefined) throw new ApiError('QosSpecsNotFound', { id });
  }

  /** QosSpecsKeyNotFound naming the keys the specs do not have: none is removed then. */
  async deleteKeys(q: QosRow, keys: string[]): Promise<void> {
    const out = await changeQosSpecs(this.sql, q.id, { remove: keys });
    if (out === undefined) throw new ApiError('QosSpecsNotFound', { id: q.id });
    if (out === null)
      throw new ApiError('QosSpecsKeyNotFound', { id: q.id, keys: keys.filter((k) => !Object.hasOwn(q.specs, k)).join(', ') });
  }

  async delete(id: string, force: boolean): Promise<void> {
    const outcome = await transaction(this.sql, { rows: [] }, (tx) => deleteQos(tx, id, force));
    if (outcome === 'missing') throw new ApiError('QosSpecsNotFound', { id });
    if (outcome === 'in-use') throw new ApiError('QosSpecsInUse', { id });
  }

  associations(id: string): Promise<{ id: string; name: string }[]> {
    return associations(this.sql, id);
  }

  /** Associate (on) or dissociate the specs and a volume type; a type has at most one QoS specs. */
  async associate(id: string, typeId: string, on: boolean): Promise<void> {
    const outcome = await associate(this.sql, id, typeId, on);
    if (outcome === 'missing-type') throw new ApiError('VolumeTypeNotFound', { id: typeId });
    if (outcome === 'taken')
      throw new ApiError('InvalidVolumeType', { reason: `type ${typeId} already has other QoS specs: dissociate them first` });
  }

  async disassociateAll(id: string): Promise<void> {
    await associate(this.sql, id, 'all', false);
  }
}
