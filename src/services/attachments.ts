/**
 * Attachments: the attachments API (3.27+) and the legacy volume actions
 * (os-reserve, os-attach, os-begin_detaching, os-detach, ...), one model.
 *
 * Every change is the attachment's CAS and its volume's
 * ATTACHMENTS_CHANGED (the counts move; the volume's status follows) in
 * one transaction: no blind write, and on a non-multiattach volume two
 * concurrent attaches cannot both win. The driver's connection calls are
 * made inside that transaction, after the CAS: a connection exists exactly
 * when the attachment that owns it committed (a refused duplicate connect
 * never reaches the driver).
 */
import { randomUUID } from 'node:crypto';
import type postgres from 'postgres';
import type { Sql } from '../../db/connect.ts';
import { attachmentTable, backendOf, volumeTable, type AttachmentRecord } from '../../db/resources.ts';
import { frontEndSpecs } from '../../db/qos.ts';
import type { AttachmentRow, NewAttachmentRow } from '../../db/schema.ts';
import { transaction, type LockSet } from '../../db/tx.ts';
import { attachmentDeltas, BUCKET_OF, type AttachmentEvent, type AttachmentState } from '../../machines/attachment.ts';
import { MODELS } from '../../machines/index.ts';
import { DriverError, type Connector, type Driver } from '../drivers/driver.ts';
import type { Backends } from '../drivers/backends.ts';
import type { Applied, ApplyOptions, Enforcer } from '../enforcer.ts';
import { ApiError } from '../errors.ts';
import { refusalError } from '../refusals.ts';
import { actorOf, scopeOf, type Caller } from './caller.ts';
import { ResourceService } from './resources.ts';

export type { AttachmentRecord };

type Tx = postgres.TransactionSql;

export interface NewAttachmentInput {
  volumeId: string;
  instanceUuid: string | null;
  connector: Connector | null;
  /** rw or ro (3.54); default from the volume's readonly flag */
  mode: 'rw' | 'ro' | null;
}

/** The driver failed inside the transaction: roll it back, then record the failure. */
class BackendRefused extends Error {
  constructor(readonly failure: DriverError) {
    super(failure.message);
  }
}

const bucket = (state: string) => BUCKET_OF[state as AttachmentState];

export class AttachmentService extends ResourceService<'attachment', AttachmentRow, NewAttachmentRow> {
  constructor(
    sql: Sql,
    enforcer: Enforcer,
    private readonly backends: Backends,
  ) {
    super(sql, enforcer, 'attachment', attachmentTable, 'AttachmentNotFound');
  }

  /** The driver of the backend holding a volume. */
  private async driverOf(sql: Sql | Tx, volumeId: string): Promise<Driver> {
    return this.backends.driver(await backendOf(sql, volumeId));
  }

  private opts(caller: Caller): ApplyOptions {
    return { actor: actorOf(caller), requestId: caller.requestId };
  }

  /** The attachment's event and its volume's, in `tx`. A refusal of either throws (and rolls both back). */
  private async move(tx: Tx, caller: Caller, attachment: { id: string; volume_id: string }, event: AttachmentEvent): Promise<Applied> {
    const moved = await this.enforcer.apply(tx, { type: 'attachment', id: attachment.id }, event, this.opts(caller));
    if (!moved.ok) throw refusalError(moved);
    const volume = await this.enforcer.apply(
      tx,
      { type: 'volume', id: attachment.volume_id },
      { type: 'ATTACHMENTS_CHANGED', ...attachmentDeltas(moved.from, moved.row.state) },
      this.opts(caller),
    );
    if (!volume.ok) throw refusalError(volume);
    return moved;
  }

  /**
   * A new attachment (initial state) and its volume's reservation, in `tx`.
   * The volume's CAS comes first, before any row that refers to the volume:
   * between the caller's read and this transaction the volume may have been
   * deleted and purged, and then its CAS refuses (404), where inserting the
   * attachment first broke its foreign key (a 500: the storm test's attach
   * 500, test/concurrency/vanished.test.ts).
   */
  private async reserve(tx: Tx, caller: Caller, volumeId: string, data: Partial<NewAttachmentRow>): Promise<string> {
    const id = randomUUID();
    const volume = await this.enforcer.apply(
      tx,
      { type: 'volume', id: volumeId },
      { type: 'ATTACHMENTS_CHANGED', ...attachmentDeltas(null, MODELS.attachment.index.initial) },
      this.opts(caller),
    );
    if (!volume.ok) throw refusalError(volume);
    await attachmentTable.insert(tx, { id, project_id: caller.projectId, volume_id: volumeId, ...data });
    await this.enforcer.create(tx, { type: 'attachment', id }, {}, this.opts(caller));
    return id;
  }

  /** CONNECT, then the driver's connection, then the connection data: all in `tx`. */
  private async connect(tx: Tx, caller: Caller, id: string, volumeId: string, connector: Connector, mode: 'rw' | 'ro' | null) {
    await this.move(tx, caller, { id, volume_id: volumeId }, { type: 'CONNECT' });
    const volume = (await volumeTable.find(tx, volumeId))!;
    const access = mode ?? (volume.readonly ? 'ro' : 'rw');
    let info;
    try {
      info = await this.backends.driver(volume.backend).initializeConnection(volumeId, connector);
    } catch (err) {
      if (err instanceof DriverError) throw new BackendRefused(err);
      throw err;
    }
    await attachmentTable.update(tx, id, {
      connector,
      attach_mode: access,
      host_name: typeof connector.host === 'string' ? connector.host : null,
      mountpoint: typeof connector.mountpoint === 'string' ? connector.mountpoint : null,
      connection_info: {
        ...info.data,
        driver_volume_type: info.driver_volume_type,
        access_mode: access,
        attachment_id: id,
        encrypted: false,
        qos_specs: await frontEndSpecs(tx, volumeId),
        cacheable: false,
      },
    });
  }

  /** Run `fn` in a transaction; a driver failure inside it rolls it back and then sends `failure`. */
  private async withBackend<T>(
    caller: Caller,
    lock: LockSet,
    id: () => string | undefined,
    failure: AttachmentEvent | null,
    fn: (tx: Tx) => Promise<T>,
  ): Promise<T> {
    try {
      return await transaction(this.sql, lock, fn);
    } catch (err) {
      if (!(err instanceof BackendRefused)) throw err;
      const attachmentId = id();
      if (failure && attachmentId) {
        await transaction(this.sql, lock, async (tx) => {
          const found = await attachmentTable.find(tx, attachmentId);
          if (found) await this.move(tx, caller, found, failure).catch(() => undefined);
        });
      }
      throw new ApiError('BackendFailed', { reason: err.message });
    }
  }

  /** POST /attachments: reserve, and connect too when a connector is given. */
  async create(caller: Caller, input: NewAttachmentInput): Promise<AttachmentRecord> {
    const volume = await volumeTable.find(this.sql, input.volumeId, scopeOf(caller));
    if (!volume) throw new ApiError('VolumeNotFound', { id: input.volumeId });
    // A failed connect of a new attachment leaves nothing: the reservation rolls back with it.
    // Read back in the transaction: once it commits, a concurrent detach may end it before a later read.
    return this.withBackend(
      caller,
      rowsOf(volume.id),
      () => undefined,
      null,
      async (tx) => {
        const id = await this.reserve(tx, caller, volume.id, { instance_uuid: input.instanceUuid });
        if (input.connector && Object.keys(input.connector).length > 0)
          await this.connect(tx, caller, id, volume.id, input.connector, input.mode);
        return (await attachmentTable.find(tx, id))!;
      },
    );
  }

  /** PUT /attachments/{id}: a connector for a reserved attachment. */
  async connectTo(caller: Caller, id: string, connector: Connector, mode: 'rw' | 'ro' | null): Promise<AttachmentRecord> {
    const attachment = await this.get(caller, id);
    return this.withBackend(
      caller,
      rowsOf(attachment.volume_id, id),
      () => id,
      { type: 'CONNECT_FAILED' },
      async (tx) => {
        await this.connect(tx, caller, id, attachment.volume_id, connector, mode);
        return (await attachmentTable.find(tx, id))!;
      },
    );
  }

  /** os-complete (3.44): the server attached it; the volume becomes in-use. */
  async complete(caller: Caller, id: string): Promise<void> {
    const attachment = await this.get(caller, id);
    await transaction(this.sql, rowsOf(attachment.volume_id, id), async (tx) => {
      await this.move(tx, caller, attachment, { type: 'COMPLETE' });
      await attachmentTable.update(tx, id, { attached_at: new Date() });
    });
  }

  /** DELETE /attachments/{id} (and os-detach): detached, the connection terminated. */
  async remove(caller: Caller, id: string): Promise<void> {
    const attachment = await this.get(caller, id);
    await this.detachIn(caller, attachment, null);
  }

  private async detachIn(caller: Caller, attachment: AttachmentRecord, failure: AttachmentEvent | null): Promise<void> {
    await this.withBackend(
      caller,
      rowsOf(attachment.volume_id, attachment.id),
      () => attachment.id,
      failure,
      async (tx) => {
        // Before the CAS: DETACH retires the row (its final state), and a live-only update would then miss it.
        await attachmentTable.update(tx, attachment.id, { detached_at: new Date() });
        await this.move(tx, caller, attachment, { type: 'DETACH' });
        if (attachment.connection_info) {
          try {
            await (await this.driverOf(tx, attachment.volume_id)).terminateConnection(attachment.volume_id, attachment.connector);
          } catch (err) {
            // As Cinder: a failed terminate does not keep a deleted attachment
            // alive; only a legacy detach in progress records the failure.
            if (!(err instanceof DriverError) || failure) throw err instanceof DriverError ? new BackendRefused(err) : err;
          }
        }
      },
    );
  }

  /** Live attachments of a volume, oldest first. */
  async ofVolume(volumeId: string): Promise<AttachmentRecord[]> {
    const page = await attachmentTable.list(this.sql, {
      projectId: undefined,
      filters: { volume_id: volumeId },
      sort: [{ key: 'created_at', dir: 'asc' }],
      limit: 10_000,
    });
    return page.rows;
  }

  /** Attached attachments of these volumes (for the volume view's `attachments`). */
  async attachedTo(volumeIds: string[]): Promise<Map<string, AttachmentRecord[]>> {
    const out = new Map<string, AttachmentRecord[]>();
    if (volumeIds.length === 0) return out;
    for (const a of await attachmentTable.inStates(this.sql, 'volume_id', volumeIds, ATTACHED_STATES)) {
      const list = out.get(a.volume_id);
      if (list) list.push(a);
      else out.set(a.volume_id, [a]);
    }
    return out;
  }

  /** os-reset_status attach_status=detached: every attachment of the volume detached, in `tx`. */
  async detachAll(tx: Tx, caller: Caller, volumeId: string): Promise<void> {
    const page = await attachmentTable.list(tx, {
      projectId: undefined,
      filters: { volume_id: volumeId },
      sort: [{ key: 'id', dir: 'asc' }],
      limit: 10_000,
    });
    for (const a of page.rows) {
      await attachmentTable.update(tx, a.id, { detached_at: new Date() });
      await this.move(tx, caller, a, { type: 'DETACH' });
    }
  }

  // --- the legacy actions (POST /volumes/{id}/action), on the same model ---

  private async legacyIn(volumeId: string, bucketName: string): Promise<AttachmentRecord[]> {
    return (await this.ofVolume(volumeId)).filter((a) => bucket(a.state) === bucketName);
  }

  /** os-reserve: a legacy attachment, reserved and connecting; the volume becomes attaching. */
  async legacyReserve(caller: Caller, volumeId: string): Promise<void> {
    await volumeOf(this.sql, caller, volumeId);
    await transaction(this.sql, rowsOf(volumeId), async (tx) => {
      const id = await this.reserve(tx, caller, volumeId, { legacy: true });
      await this.move(tx, caller, { id, volume_id: volumeId }, { type: 'CONNECT' });
    });
  }

  /** os-unreserve: the pending legacy attachment goes; a miss is silent, as in Cinder. */
  async legacyUnreserve(caller: Caller, volumeId: string): Promise<void> {
    await volumeOf(this.sql, caller, volumeId);
    for (const a of (await this.legacyIn(volumeId, 'attaching')).filter((a) => a.legacy && !a.connection_info)) {
      await this.detachIn(caller, a, null);
    }
  }

  /** os-attach: complete the pending legacy attachment, or make one attached at once. */
  async legacyAttach(
    caller: Caller,
    volumeId: string,
    info: { instanceUuid: string | null; hostName: string | null; mountpoint: string | null; mode: 'rw' | 'ro' },
  ): Promise<void> {
    await volumeOf(this.sql, caller, volumeId);
    const [pending] = (await this.legacyIn(volumeId, 'attaching')).filter((a) => a.legacy);
    await transaction(this.sql, rowsOf(volumeId, pending?.id), async (tx) => {
      const id = pending?.id ?? (await this.reserve(tx, caller, volumeId, { legacy: true }));
      if (!pending) await this.move(tx, caller, { id, volume_id: volumeId }, { type: 'CONNECT' });
      await this.move(tx, caller, { id, volume_id: volumeId }, { type: 'COMPLETE' });
      await attachmentTable.update(tx, id, {
        instance_uuid: info.instanceUuid,
        host_name: info.hostName,
        mountpoint: info.mountpoint,
        attach_mode: info.mode,
        attached_at: new Date(),
      });
    });
  }

  /** os-begin_detaching: an attached attachment starts detaching. */
  async legacyBeginDetaching(caller: Caller, volumeId: string): Promise<void> {
    await volumeOf(this.sql, caller, volumeId);
    const [attached] = await this.legacyIn(volumeId, 'attached');
    if (!attached) {
      throw new ApiError('InvalidVolume', {
        reason: "Unable to detach volume. Volume status must be 'in-use' and attach_status must be 'attached' to detach.",
      });
    }
    await transaction(this.sql, rowsOf(volumeId, attached.id), (tx) => this.move(tx, caller, attached, { type: 'BEGIN_DETACH' }));
  }

  /** os-roll_detaching: detaching attachments go back to attached; a miss is silent. */
  async legacyRollDetaching(caller: Caller, volumeId: string): Promise<void> {
    await volumeOf(this.sql, caller, volumeId);
    for (const a of await this.legacyIn(volumeId, 'detaching')) {
      await transaction(this.sql, rowsOf(volumeId, a.id), (tx) => this.move(tx, caller, a, { type: 'ROLL_DETACH' }));
    }
  }

  /** os-detach: that attachment (or the volume's only one) is detached. */
  async legacyDetach(caller: Caller, volumeId: string, attachmentId: string | null): Promise<void> {
    await volumeOf(this.sql, caller, volumeId);
    const live = await this.ofVolume(volumeId);
    const target = attachmentId ? live.find((a) => a.id === attachmentId) : live.length === 1 ? live[0] : undefined;
    if (!target) {
      throw new ApiError('InvalidVolume', {
        reason: attachmentId
          ? `volume ${volumeId} has no attachment ${attachmentId}.`
          : `volume ${volumeId} has ${live.length} attachments: name the one to detach with attachment_id.`,
      });
    }
    await this.detachIn(caller, target, bucket(target.state) === 'detaching' ? { type: 'DETACH_FAILED' } : null);
  }

  /** os-initialize_connection: the driver's connection info (no state changes, as in Cinder). */
  async initializeConnection(caller: Caller, volumeId: string, connector: Connector) {
    const volume = await volumeOf(this.sql, caller, volumeId);
    try {
      const info = await this.backends.driver(volume.backend).initializeConnection(volumeId, connector);
      return { ...info, data: { ...info.data, qos_specs: await frontEndSpecs(this.sql, volumeId) } };
    } catch (err) {
      if (err instanceof DriverError) throw new ApiError('BackendFailed', { reason: err.message });
      throw err;
    }
  }

  /** os-terminate_connection: the driver forgets the connector, then unreserve. */
  async terminateConnection(caller: Caller, volumeId: string, connector: Connector | null): Promise<void> {
    const volume = await volumeOf(this.sql, caller, volumeId);
    await this.backends.driver(volume.backend).terminateConnection(volumeId, connector);
    await this.legacyUnreserve(caller, volumeId);
  }
}

/** States whose attachments the volume view lists (those counted as attached). */
const ATTACHED_STATES = MODELS.attachment.states.filter((s) => bucket(s) === 'attached');

/** What an attachment change locks: its volume, and the attachment when it exists. */
function rowsOf(volumeId: string, attachmentId?: string): LockSet {
  return { rows: [{ type: 'volume', id: volumeId }, ...(attachmentId ? [{ type: 'attachment', id: attachmentId }] : [])] };
}

async function volumeOf(sql: Sql, caller: Caller, id: string) {
  const volume = await volumeTable.find(sql, id, scopeOf(caller));
  if (!volume) throw new ApiError('VolumeNotFound', { id });
  return volume;
}
