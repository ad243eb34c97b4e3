/**
 * Worker steps: what a worker does for a row it claimed, by the `step`
 * the machine names in the state's meta. A step calls the driver and moves
 * the row on with the next event, every event a CAS that checks this
 * worker still owns the row. Steps never name states: they ask the machine
 * whether it accepts an event where the row is.
 */
import type { Sql } from '../../db/connect.ts';
import type { ClaimedRow } from '../../db/queue.ts';
import { isResourceType, modelOf, type EventMap, type ResourceModel, type ResourceType } from '../../machines/index.ts';
import type { Backend, Backends } from '../drivers/backends.ts';
import { DriverError, type Driver } from '../drivers/driver.ts';
import type { Enforcer, Outcome } from '../enforcer.ts';
import { recordBackupMessage, recordVolumeMessage } from '../../db/messages.ts';
import type { Executor } from '../../db/connect.ts';
import { transaction } from '../../db/tx.ts';
import { createData, schedulingData, setVolumeType, type CreateData } from '../../db/volume-data.ts';
import { typeForCreate } from '../../db/volume-types.ts';
import { groupSnapshotMembers } from '../../db/groups.ts';
import { backupData, recordBackedUp, recordFailure, recordProgress, recordRestored, restoreChain } from '../../db/backups.ts';
import type { PosixBackupStore } from '../backup/posix.ts';

export interface StepContext {
  sql: Sql;
  enforcer: Enforcer;
  backends: Backends;
  workerId: string;
  log: (msg: string, fields?: Record<string, unknown>) => void;
  /**
   * Before every backend call: throws unless this step's fence is still
   * held and the row still ours (a failover takes the fence's session with
   * it; see Worker.run). Absent: no fence (tests of one worker).
   */
  fenced?: () => Promise<void>;
  /** where backups are written (src/backup/posix.ts); absent: backup steps fail, saying so */
  backupStore?: PosixBackupStore;
}

export type Step = (ctx: StepContext, row: ClaimedRow) => Promise<void>;

/** Does the machine accept `event` from `state`? */
function accepts(model: ResourceModel, state: string, event: string): boolean {
  return model.index.candidates(state, event).length > 0;
}

interface SendOptions {
  /** the worker keeps the row for its next step (step chaining) */
  keep?: boolean;
  /** the resource holds no lease (ApplyOptions.holdsNoLeases) */
  holdsNoLeases?: boolean;
  /**
   * Written in the event's transaction when it applies (a user message that
   * says why, the backup's fail_reason): the failure and what tells the
   * project about it are one change.
   */
  beside?: (tx: Executor) => Promise<void>;
}

async function send<T extends ResourceType>(
  ctx: StepContext,
  type: T,
  id: string,
  event: EventMap[T],
  opts: SendOptions = {},
): Promise<Outcome> {
  const apply = (exec: Executor) =>
    ctx.enforcer.apply(exec, { type, id }, event, {
      actor: ctx.workerId,
      owner: ctx.workerId,
      nextOwner: opts.keep ? ctx.workerId : null,
      holdsNoLeases: opts.holdsNoLeases,
    });
  const beside = opts.beside;
  const outcome = beside
    ? await transaction(ctx.sql, { rows: [{ type, id }] }, async (tx) => {
        const applied = await apply(tx);
        if (applied.ok) await beside(tx);
        return applied;
      })
    : await apply(ctx.sql);
  if (!outcome.ok) ctx.log('step event refused', { type, id, event: event.type, kind: outcome.kind, state: outcome.state });
  return outcome;
}

/** Run a driver call; a DriverError becomes the failure event. */
async function backend<T extends ResourceType>(
  ctx: StepContext,
  type: T,
  id: string,
  call: () => Promise<void>,
  success: EventMap[T],
  failure: EventMap[T],
  opts: Pick<SendOptions, 'holdsNoLeases'> & { onFailure?: (tx: Executor, err: DriverError) => Promise<void> } = {},
): Promise<void> {
  await ctx.fenced?.();
  try {
    await call();
  } catch (err) {
    if (!(err instanceof DriverError)) throw err;
    ctx.log('backend failed', { type, id, error: err.message });
    const onFailure = opts.onFailure;
    await send(ctx, type, id, failure, { holdsNoLeases: opts.holdsNoLeases, beside: onFailure && ((tx) => onFailure(tx, err)) });
    return;
  }
  await send(ctx, type, id, success, { holdsNoLeases: opts.holdsNoLeases });
}

const volume = modelOf('volume');

/** The driver of the backend holding a volume. */
/** The driver of the backend the claimed row's data lives on (read with the claim, db/queue.ts). */
function driverOf(ctx: StepContext, row: ClaimedRow): { driver: Driver; volumeId: string } {
  if (row.data_volume_id === null) throw new Error(`${row.resource_type} ${row.resource_id} has a state row but no data row`);
  return { driver: ctx.backends.driver(row.backend), volumeId: row.data_volume_id };
}

/**
 * A volume step on what its event recorded in the operation (`key`, a
 * `kind`): the driver call, then `success`; BACKEND_FAILED when the call
 * fails, or when the operation lacks what the step needs.
 */
function operationStep<K extends 'number' | 'string'>(
  key: string,
  kind: K,
  call: (driver: Driver, id: string, value: K extends 'number' ? number : string, ctx: StepContext) => Promise<void>,
  success: 'EXTENDED' | 'REVERTED' | 'RESTORED',
  onFailure?: (tx: Executor, id: string, value: K extends 'number' ? number : string) => Promise<void>,
): Step {
  return async (ctx, row) => {
    const value = row.operation?.[key];
    if (typeof value !== kind) {
      await send(ctx, 'volume', row.resource_id, { type: 'BACKEND_FAILED' });
      return;
    }
    const { driver } = driverOf(ctx, row);
    const id = row.resource_id;
    await backend(
      ctx,
      'volume',
      id,
      () => call(driver, id, value as never, ctx),
      { type: success },
      { type: 'BACKEND_FAILED' },
      {
        onFailure: onFailure && ((tx) => onFailure(tx, id, value as never)),
      },
    );
  };
}

/**
 * Create on the backend the scheduler chose: empty, or from the source the
 * volume holds as a reader (a snapshot, a volume, or a backup, whose chain
 * is written onto the new volume before it is created).
 */
const createVolume = async (ctx: StepContext, row: ClaimedRow, known?: CreateData): Promise<void> => {
  const id = row.resource_id;
  // Right after scheduling, the scheduling step already read it.
  const data = known ?? (await createData(ctx.sql, id));
  if (!data) throw new Error(`volume ${id} has a state row but no data row`);
  const driver = ctx.backends.driver(data.backend);
  const call = data.snapshot_id
    ? () => driver.createVolumeFromSnapshot(id, data.snapshot_id!, row.size)
    : data.source_volid
      ? () => driver.cloneVolume(id, data.source_volid!, row.size)
      : data.backup_id
        ? async () => {
            await driver.createVolume(id, row.size);
            await restoreOnto(ctx, driver, id, data.backup_id!);
          }
        : () => driver.createVolume(id, row.size);
  // A volume from nothing holds no lease (only a clone or a volume from a snapshot or backup reads a source).
  const fromNothing = !data.snapshot_id && !data.source_volid && !data.backup_id;
  await backend(
    ctx,
    'volume',
    id,
    call,
    { type: 'BACKEND_CREATED' },
    { type: 'BACKEND_FAILED' },
    {
      holdsNoLeases: fromNothing,
      // A volume from a backup that could not be made: the backup's project is told, as for a restore.
      onFailure: data.backup_id ? (tx) => recordBackupMessage(tx, data.backup_id!, 'restoreFailed', id) : undefined,
    },
  );
};

/** A clone or a volume from a snapshot: on its source's backend, if that has room. */
async function besideSource(b: Backend, sizeGb: number): Promise<{ backend: Backend } | { reason: string }> {
  const { freeGb } = await b.driver.capacity();
  return freeGb >= sizeGb ? { backend: b } : { reason: `the source's backend ${b.name} has ${freeGb} GiB free` };
}

/**
 * Choose a backend (src/drivers/backends.ts): a clone or a volume from a
 * snapshot goes where its source is (the data is there, as in Cinder);
 * any other, to a backend whose capabilities satisfy its type's extra specs
 * and that has room. The choice is recorded with SCHEDULED, in one
 * transaction; then the same worker creates it.
 */
const scheduleVolume: Step = async (ctx, row) => {
  const id = row.resource_id;
  // What scheduling reads (the type's specs, the source's backend) is the data row's, which
  // SCHEDULE does not change: read beside it, not after it (one round trip less).
  const reading = schedulingData(ctx.sql, id);
  reading.catch(() => {}); // awaited below; unobserved if SCHEDULE throws first
  if (accepts(volume, row.state, 'SCHEDULE')) {
    const took = await send(ctx, 'volume', id, { type: 'SCHEDULE' }, { keep: true });
    if (!took.ok) return;
  }
  const data = await reading;
  if (!data) throw new Error(`volume ${id} has a state row but no data row`);
  const chosen = data.from_source
    ? await besideSource(ctx.backends.get(data.source_backend), row.size)
    : await ctx.backends.choose(data.specs ?? {}, row.size);
  if ('reason' in chosen) {
    ctx.log('no backend for the volume', { id, size: row.size, reason: chosen.reason });
    // The failure and the message that tells the project why: one transaction.
    await send(
      ctx,
      'volume',
      id,
      { type: 'SCHEDULE_FAILED' },
      { beside: (tx) => recordVolumeMessage(tx, id, 'scheduleFailed', chosen.reason) },
    );
    return;
  }
  // SCHEDULED writes the choice on the volume in its own statement (the event's `data`), so the
  // backend is recorded exactly when the row moves on, by the worker that owns it, or not at all.
  const scheduled = await send(ctx, 'volume', id, { type: 'SCHEDULED', backend: chosen.backend.name }, { keep: true });
  if (scheduled.ok)
    await createVolume(
      ctx,
      { ...row, ...scheduled.row, owner: ctx.workerId },
      { snapshot_id: data.snapshot_id, source_volid: data.source_volid, backup_id: data.backup_id, backend: chosen.backend.name },
    );
};

const extendVolume = operationStep('new_size', 'number', (driver, id, newSize) => driver.extendVolume(id, newSize), 'EXTENDED');

/** Revert to the snapshot recorded by REVERT; the snapshot is held as a reader until this ends. */
const revertVolume = operationStep(
  'snapshot_id',
  'string',
  (driver, id, snapshotId) => driver.revertToSnapshot(id, snapshotId),
  'REVERTED',
);

/**
 * Retype on the one backend: the volume's data stays; what changes is its
 * type, recorded with RETYPED in one transaction. The new type is held
 * against its deletion meanwhile; one deleted since the request fails the
 * retype (the volume goes back to where it was).
 */
const retypeVolume: Step = async (ctx, row) => {
  const id = row.resource_id;
  const typeId = row.operation?.type_id;
  await transaction(ctx.sql, { rows: [{ type: 'volume', id }] }, async (tx) => {
    const type = typeof typeId === 'string' ? await typeForCreate(tx, typeId, undefined) : undefined;
    const event = type ? ({ type: 'RETYPED' } as const) : ({ type: 'BACKEND_FAILED' } as const);
    if (!type) ctx.log('the new type is gone: the retype fails', { id, typeId });
    const outcome = await ctx.enforcer.apply(tx, { type: 'volume', id }, event, {
      actor: ctx.workerId,
      owner: ctx.workerId,
      nextOwner: null,
    });
    if (!outcome.ok) ctx.log('step event refused', { type: 'volume', id, event: event.type, kind: outcome.kind, state: outcome.state });
    else if (type) await setVolumeType(tx, id, type);
  });
};

const deleteVolume: Step = async (ctx, row) => {
  const { driver } = driverOf(ctx, row);
  await backend(
    ctx,
    'volume',
    row.resource_id,
    () => driver.deleteVolume(row.resource_id),
    { type: 'DELETED' },
    { type: 'BACKEND_FAILED' },
  );
};

const createSnapshot: Step = async (ctx, row) => {
  const id = row.resource_id;
  const { driver, volumeId } = driverOf(ctx, row);
  await backend(ctx, 'snapshot', id, () => driver.createSnapshot(id, volumeId), { type: 'BACKEND_CREATED' }, { type: 'BACKEND_FAILED' });
};

/** A snapshot lives on its volume's backend. */
const deleteSnapshot: Step = async (ctx, row) => {
  const id = row.resource_id;
  const { driver } = driverOf(ctx, row);
  await backend(ctx, 'snapshot', id, () => driver.deleteSnapshot(id), { type: 'DELETED' }, { type: 'BACKEND_FAILED' });
};

/** The store, or the failure that says there is none. */
function storeOf(ctx: StepContext): PosixBackupStore {
  if (!ctx.backupStore) throw new DriverError('backup', 'no backup store is configured on this node (VOLSTATE_BACKUP_DIR)');
  return ctx.backupStore;
}

/** The image a backup reads is named after it: a resumed step reads the same one. */
const imageKey = (backupId: string) => `backup-${backupId}`;

/**
 * Make a backup: read a still image of the source (the driver's, named
 * after the backup, so a resumed step reads the same one and keeps the
 * chunks its journal holds), write chunks, then BACKED_UP. The source's
 * backup lease is given back by the enforcer when the backup leaves
 * `creating`, whichever way.
 */
const createBackup: Step = async (ctx, row) => {
  const id = row.resource_id;
  const data = await backupData(ctx.sql, id);
  if (!data) throw new Error(`backup ${id} has a state row but no data row`);
  const driver = ctx.backends.driver(data.backend);
  const parent = data.identity.parentId ? (await backupData(ctx.sql, data.identity.parentId))?.identity : undefined;
  await ctx.fenced?.();
  let objects: number;
  let shown = 0;
  try {
    const store = storeOf(ctx);
    const source = await driver.openBackupSource(
      data.snapshotId ? { snapshotId: data.snapshotId } : { volumeId: data.identity.volumeId },
      imageKey(id),
    );
    try {
      const result = await store.backup(data.identity, source, parent, {
        check: ctx.fenced,
        // A write per step of 10% at most: a backup's 32 chunks a GiB were as many UPDATEs.
        onProgress: (p) =>
          p.percent >= shown + 10 && p.percent < 100 ? recordProgress(ctx.sql, id, (shown = p.percent), ctx.workerId) : undefined,
      });
      objects = result.objectCount;
    } finally {
      await source.close();
    }
  } catch (err) {
    if (!(err instanceof DriverError)) throw err;
    await driver.releaseBackupSource(imageKey(id));
    return backupFailed(ctx, id, err);
  }
  if (!(await recordBackedUp(ctx.sql, id, data.identity, objects, ctx.workerId)))
    return ctx.log('the row left this worker while it backed up', { id });
  const done = await send(ctx, 'backup', id, { type: 'BACKED_UP' });
  if (done.ok) await driver.releaseBackupSource(imageKey(id));
};

/**
 * A backup step failed in the store or the driver: BACKEND_FAILED (its
 * error state) and, in the same transaction, why (fail_reason) and the
 * project's message.
 */
async function backupFailed(ctx: StepContext, id: string, err: DriverError): Promise<void> {
  ctx.log('backup step failed', { id, error: err.message });
  await send(
    ctx,
    'backup',
    id,
    { type: 'BACKEND_FAILED' },
    {
      beside: async (tx) => {
        await recordFailure(tx, id, err.message);
        await recordBackupMessage(tx, id, 'createFailed');
      },
    },
  );
}

/** An imported record: its objects must be in the store, whole, and no bigger than the size it claims. */
const importBackup: Step = async (ctx, row) => {
  const id = row.resource_id;
  const data = await backupData(ctx.sql, id);
  if (!data) throw new Error(`backup ${id} has a state row but no data row`);
  await ctx.fenced?.();
  try {
    const found = await storeOf(ctx).verify(data.identity);
    if (found.size > row.size * 1024 ** 3)
      throw new DriverError('import', `the record says ${row.size} GiB, but its metadata holds ${found.size} bytes`);
  } catch (err) {
    if (!(err instanceof DriverError)) throw err;
    return backupFailed(ctx, id, err);
  }
  await send(ctx, 'backup', id, { type: 'BACKED_UP' });
};

const deleteBackup: Step = async (ctx, row) => {
  const id = row.resource_id;
  const data = await backupData(ctx.sql, id);
  if (!data) throw new Error(`backup ${id} has a state row but no data row`);
  await backend(
    ctx,
    'backup',
    id,
    async () => {
      await storeOf(ctx).delete(data.identity);
      await ctx.backends.driver(data.backend).releaseBackupSource(imageKey(id));
    },
    { type: 'DELETED' },
    { type: 'BACKEND_FAILED' },
    { onFailure: (tx) => recordBackupMessage(tx, id, 'deleteFailed') },
  );
};

/**
 * Write a backup's whole chain onto a volume, then give the volume the
 * metadata its source had when the backup was taken (as Cinder's restore
 * does), while this worker still owns the volume's row.
 */
async function restoreOnto(ctx: StepContext, driver: Driver, volumeId: string, backupId: string): Promise<void> {
  const chain = await restoreChain(ctx.sql, backupId);
  const target = await driver.openRestoreTarget(volumeId);
  try {
    await storeOf(ctx).restore(chain, target, { check: ctx.fenced });
  } finally {
    await target.close();
  }
  await recordRestored(ctx.sql, volumeId, backupId, ctx.workerId);
}

/** Write a backup (its whole chain) onto the volume; the backup is held as a reader until this ends. */
const restoreVolume = operationStep(
  'backup_id',
  'string',
  (driver, id, backupId, ctx) => restoreOnto(ctx, driver, id, backupId),
  'RESTORED',
  (tx, id, backupId) => recordBackupMessage(tx, backupId, 'restoreFailed', id),
);

/**
 * A group is made and deleted with nothing on the backend: the file and
 * fake drivers keep no group of their own (Cinder's generic group path).
 * Its delete runs once its last member volume is gone (the state's ready guard).
 */
const createGroup: Step = async (ctx, row) => {
  await ctx.fenced?.();
  await send(ctx, 'group', row.resource_id, { type: 'CREATED' });
};
const deleteGroup: Step = async (ctx, row) => {
  await ctx.fenced?.();
  await send(ctx, 'group', row.resource_id, { type: 'DELETED' });
};

/**
 * A group snapshot: every member's copy, then every member and the group
 * snapshot moved on in ONE transaction — all available, or all error (the
 * copies taken of a failed one are deleted with its members). Each copy
 * is idempotent (a lost worker's successor takes them all again).
 */
const createGroupSnapshot: Step = async (ctx, row) => {
  const id = row.resource_id;
  const members = await groupSnapshotMembers(ctx.sql, id);
  let failed: DriverError | undefined;
  for (const m of members) {
    await ctx.fenced?.();
    try {
      await ctx.backends.driver(m.backend).createSnapshot(m.id, m.volume_id);
    } catch (err) {
      if (!(err instanceof DriverError)) throw err;
      ctx.log('backend failed', { type: 'snapshot', id: m.id, group_snapshot: id, error: err.message });
      failed = err;
      break;
    }
  }
  const each = failed ? 'GROUP_FAILED' : 'GROUP_CREATED';
  const rows = [{ type: 'group_snapshot', id }, ...members.map((m) => ({ type: 'snapshot', id: m.id }))];
  const outcome = await transaction(ctx.sql, { rows, leaseSourcesOf: rows.slice(1) }, async (tx) => {
    const done = await ctx.enforcer.apply(
      tx,
      { type: 'group_snapshot', id },
      { type: failed ? 'BACKEND_FAILED' : 'CREATED' },
      {
        actor: ctx.workerId,
        owner: ctx.workerId,
        nextOwner: null,
      },
    );
    if (!done.ok) return done;
    for (const m of members) {
      // A member an admin moved meanwhile (a reset) stays where it was put.
      await ctx.enforcer.apply(tx, { type: 'snapshot', id: m.id }, { type: each }, { actor: ctx.workerId });
    }
    return done;
  });
  if (!outcome.ok) ctx.log('step event refused', { type: 'group_snapshot', id, kind: outcome.kind, state: outcome.state });
};
const deleteGroupSnapshot: Step = async (ctx, row) => {
  await ctx.fenced?.();
  await send(ctx, 'group_snapshot', row.resource_id, { type: 'DELETED' });
};

/** Step implementations by resource type and the step name the machine gives. */
export const STEPS: Record<ResourceType, Record<string, Step>> = {
  volume: {
    schedule: scheduleVolume,
    create: createVolume,
    extend: extendVolume,
    revert: revertVolume,
    retype: retypeVolume,
    delete: deleteVolume,
    restore: restoreVolume,
  },
  snapshot: { create: createSnapshot, delete: deleteSnapshot },
  attachment: {},
  backup: { create: createBackup, import: importBackup, delete: deleteBackup },
  group: { create: createGroup, delete: deleteGroup },
  group_snapshot: { create: createGroupSnapshot, delete: deleteGroupSnapshot },
};

export function stepFor(type: string, state: string): Step | undefined {
  if (!isResourceType(type)) return undefined;
  const name = modelOf(type).index.meta(state).step;
  return name ? STEPS[type][name] : undefined;
}
