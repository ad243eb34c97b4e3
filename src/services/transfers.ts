/**
 * Volume transfers: a project offers a volume, another accepts it with the
 * auth key. The offer is a state of the volume (`awaiting-transfer`), so
 * nothing else can happen to it meanwhile; the accept moves the volume, its
 * snapshots (unless the offer said no_snapshots, 3.55) and their quota
 * usage to the accepting project in the transaction of its CAS, or refuses
 * and changes nothing. Cinder moves the usage with reservations committed
 * after the ownership change, in other transactions.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import { consume } from '../../db/quotas.ts';
import { volumeTable } from '../../db/resources.ts';
import type { TransferRow } from '../../db/schema.ts';
import { busySnapshot, changeOwner, findTransfer, insertTransfer, listTransfers, removeTransfer, transferred } from '../../db/transfers.ts';
import { transaction } from '../../db/tx.ts';
import { MODELS } from '../../machines/index.ts';
import { countsOf, negate } from '../../machines/quota.ts';
import { quotaError, type Enforcer } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';

export type { TransferRow };

/** Cinder's lengths: a 16-character key a person can type (hex), an 8-character salt. */
const KEY_BYTES = 8;
const SALT_BYTES = 4;

const hashOf = (salt: string, key: string) => createHmac('sha256', salt).update(key).digest('hex');

function keyMatches(t: TransferRow, key: string): boolean {
  const given = Buffer.from(hashOf(t.salt, key), 'hex');
  const stored = Buffer.from(t.crypt_hash, 'hex');
  return given.length === stored.length && timingSafeEqual(given, stored);
}

const add = (into: Record<string, number>, more: Record<string, number>) => {
  for (const [r, n] of Object.entries(more)) into[r] = (into[r] ?? 0) + n;
};

/** A new auth key: made by the caller of create, which can still answer with it if the connection is lost as it commits. */
export const newAuthKey = () => randomBytes(KEY_BYTES).toString('hex');

export interface NewTransferInput {
  /** the offer's id and key, chosen by the caller */
  id: string;
  authKey: string;
  volumeId: string;
  name: string | null;
  noSnapshots: boolean;
}

export class TransferService {
  constructor(
    private readonly sql: Sql,
    private readonly enforcer: Enforcer,
  ) {}

  /** Offer a volume: its CAS available → awaiting-transfer and the offer's row, in one transaction. The key is returned once. */
  async create(caller: Caller, input: NewTransferInput): Promise<TransferRow> {
    const volume = await volumeTable.find(this.sql, input.volumeId, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id: input.volumeId });
    const { id, authKey } = input;
    const salt = randomBytes(SALT_BYTES).toString('hex');
    const ref = { type: 'volume' as const, id: volume.id };
    return transaction(this.sql, { rows: [ref], snapshotsOf: input.noSnapshots ? [] : [volume.id] }, async (tx) => {
      const offered = await this.enforcer.apply(
        tx,
        ref,
        { type: 'TRANSFER_OFFER', transfer_id: id },
        { actor: actorOf(caller), requestId: caller.requestId },
      );
      if (!offered.ok) throw refusalError(offered);
      if (!input.noSnapshots) {
        // Cinder's condition: the snapshots go with the volume, so each must be available
        // (read under the lock: none can start now, the volume is offered).
        const busy = await busySnapshot(tx, volume.id);
        if (busy) {
          throw new ApiError('InvalidSnapshot', {
            reason: `snapshot ${busy.id} is ${MODELS.snapshot.index.statusOf(busy.state)}: a volume is transferred with its snapshots only when all are available (or offer it with no_snapshots, microversion 3.55).`,
          });
        }
      }
      return insertTransfer(tx, {
        id,
        volume_id: volume.id,
        name: input.name,
        salt,
        crypt_hash: hashOf(salt, authKey),
        no_snapshots: input.noSnapshots,
        source_project_id: volume.project_id,
      });
    });
  }

  /** An offer the caller may see: its project's (any, for an admin). */
  async get(caller: Caller, id: string): Promise<TransferRow> {
    const t = await findTransfer(this.sql, id, scopeOf(caller));
    if (!t) throw new ApiError('TransferNotFound', { id });
    return t;
  }

  /** An offer after a lost connection: any project's, as its creator just made it. */
  find(id: string): Promise<TransferRow | undefined> {
    return findTransfer(this.sql, id, undefined);
  }

  list(caller: Caller, allTenants: boolean, limit: number): Promise<TransferRow[]> {
    return listTransfers(this.sql, caller.isAdmin && allTenants ? undefined : caller.projectId, limit);
  }

  /**
   * Accept: any project holding the key may. One transaction: the volume's
   * CAS (which only this offer passes: a second accept finds it gone), the
   * locked snapshots, the usage moved (the receiver's within its limits),
   * the owner changed, the offer's row removed.
   */
  async accept(caller: Caller, id: string, authKey: string): Promise<TransferRow> {
    const t = await findTransfer(this.sql, id, undefined);
    if (!t) throw new ApiError('TransferNotFound', { id });
    if (!keyMatches(t, authKey)) throw new ApiError('InvalidAuthKey', { id });
    const ref = { type: 'volume' as const, id: t.volume_id };
    const snapshotsOf = t.no_snapshots ? [] : [t.volume_id];
    return transaction(this.sql, { rows: [ref], snapshotsOf }, async (tx) => {
      const accepted = await this.enforcer.apply(
        tx,
        ref,
        { type: 'TRANSFER_ACCEPT', transfer_id: id },
        { actor: actorOf(caller), requestId: caller.requestId },
      );
      // Refused: the offer ended since it was read (accepted, withdrawn, the volume reset).
      if (!accepted.ok) throw new ApiError('TransferNotFound', { id });
      const { projectId: donor, volumeTypeId, snapshots } = await transferred(tx, t.volume_id, !t.no_snapshots);
      const receiver = caller.projectId;
      const moving = countsOf('volume', accepted.row, volumeTypeId);
      for (const s of snapshots) add(moving, countsOf('snapshot', s, s.volume_type_id));
      if (donor !== receiver) {
        // The two projects' usage rows in one order, so accepts in opposite directions cannot deadlock.
        for (const project of [donor, receiver].sort()) {
          const deltas = project === receiver ? moving : negate(moving);
          const exceeded = await consume(tx, project, deltas);
          if (exceeded) throw quotaError(exceeded);
        }
        await changeOwner(
          tx,
          t.volume_id,
          snapshots.map((s) => s.id),
          receiver,
          caller.userId,
        );
      }
      await removeTransfer(tx, id);
      return t;
    });
  }

  /** Withdraw an offer: the volume's CAS back to available, and the row removed. */
  async cancel(caller: Caller, id: string): Promise<void> {
    const t = await this.get(caller, id);
    const ref = { type: 'volume' as const, id: t.volume_id };
    await transaction(this.sql, { rows: [ref] }, async (tx) => {
      const cancelled = await this.enforcer.apply(
        tx,
        ref,
        { type: 'TRANSFER_CANCEL', transfer_id: id },
        { actor: actorOf(caller), requestId: caller.requestId },
      );
      if (!cancelled.ok) throw new ApiError('TransferNotFound', { id });
      await removeTransfer(tx, id);
    });
  }
}
