/**
 * The snapshot machine. Pure: no I/O, no database, no HTTP.
 *
 * A snapshot holds its volume as a reader while it is being taken (the
 * volume's `readers` and `dependents` change in the same transaction that
 * inserts the snapshot), and is itself read while volumes are created from
 * it. See machines/volume.ts for how the volume side counts.
 */
import { setup } from 'xstate';
import {
  allOf,
  effectTable,
  guardTable,
  jsEffects,
  jsGuards,
  readerEffects,
  readerGuards,
  recoveryEffects,
  recoveryGuards,
  resetTransitions,
  statusesOf,
  resetGuards,
  unownedGuard,
  workerLost,
  TRANSIENT,
  type ContextOf,
  type ContextSpec,
  type EventOf,
  type EventSpecs,
  type StateMeta,
} from './model.ts';
import { defineResource } from './resource.ts';

export const SNAPSHOT_STATES = ['creating', 'available', 'restoring', 'deleting', 'error', 'error_deleting', 'deleted'] as const;
export type SnapshotState = (typeof SNAPSHOT_STATES)[number];
export const SNAPSHOT_STATUSES = statusesOf(SNAPSHOT_STATES);
export const SNAPSHOT_RESETTABLE = ['available', 'error', 'error_deleting'] as const;

export const snapshotContext = {
  /** in-flight operations reading this snapshot (volumes being created from it) */
  readers: 'int',
  /** GiB, the volume's size when the snapshot was taken */
  size: 'int',
  /** the step's lost attempts while one is in flight (see model.ts, recovery) */
  operation: 'jsonb',
  /** the worker running a step on this row (read-only here: the enforcer sets it) */
  owner: 'text?',
} as const satisfies ContextSpec;
export type SnapshotContext = ContextOf<typeof snapshotContext>;

export const snapshotEvents = {
  DELETE: { by: 'api', verb: 'delete', request: 'delete', params: {}, doc: 'delete the snapshot (DELETE /snapshots/{id})' },
  FORCE_DELETE: { by: 'api', verb: 'force-delete', request: 'os-force_delete', params: {}, doc: 'admin: delete whatever the status (os-force_delete)' },
  RESET_STATUS: { by: 'api', verb: 'reset the status of', request: 'os-reset_status', params: { status: 'text' }, doc: 'admin: set a resting status (os-reset_status)' },
  READ_BEGIN: { by: 'link', verb: 'create a volume from', request: 'volume create with snapshot_id', params: {}, doc: 'a volume is being created from this snapshot' },
  RESTORE_BEGIN: { by: 'link', verb: 'revert a volume to', request: 'revert', params: {}, doc: 'a volume is being reverted to this snapshot' },
  READ_END: { by: 'link', params: {}, doc: 'an operation that read this snapshot ended' },
  BACKEND_CREATED: { by: 'worker', params: {}, doc: 'the backend took the snapshot' },
  BACKEND_FAILED: { by: 'worker', params: {}, doc: 'the backend failed the operation' },
  DELETED: { by: 'worker', params: {}, doc: 'the backend deleted the snapshot' },
  WORKER_LOST: { by: 'worker', params: {}, doc: 'the worker running the step died; sent by any live worker (see model.ts, recovery)' },
} as const satisfies EventSpecs;
export type SnapshotEvent = EventOf<typeof snapshotEvents>;
export type SnapshotEventType = SnapshotEvent['type'];

type C = SnapshotContext;
type E = SnapshotEvent;

export const snapshotGuards = guardTable<C, E>()({
  ...readerGuards<C, E>('creating a volume from it'),
  unowned: unownedGuard<C, E>(),
  ...recoveryGuards<C, E>(),
  ...resetGuards<C, E, typeof SNAPSHOT_RESETTABLE>(SNAPSHOT_RESETTABLE),
  canDelete: allOf('noReaders'),
  canForceDelete: allOf('unowned', 'noReaders'),
});

export const snapshotEffects = effectTable<C, E>()({ ...readerEffects<C, E>(), ...recoveryEffects<C, E>() });

const resetStatus = resetTransitions('snapshot', SNAPSHOT_RESETTABLE);
const forceDelete = { guard: 'canForceDelete', target: '#snapshot.deleting' } as const;

export const snapshotMachine = setup({
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof snapshotGuards>(snapshotGuards),
  actions: jsEffects<C, E, typeof snapshotEffects>(snapshotEffects),
}).createMachine({
  id: 'snapshot',
  initial: 'creating',
  context: { readers: 0, size: 1, operation: null, owner: null },
  on: { READ_END: { guard: 'hasReaders', actions: 'releaseReader' } },
  states: {
    creating: {
      tags: [TRANSIENT],
      meta: { step: 'create', holdsReaders: true, doc: 'the backend is taking the snapshot (the volume is held as a reader)' },
      on: {
        BACKEND_CREATED: { target: 'available', actions: 'clearOperation' },
        BACKEND_FAILED: { target: 'error', actions: 'clearOperation' },
        // Taking the snapshot again overwrites the partial copy: redo it.
        WORKER_LOST: workerLost('snapshot', 'creating', 'error'),
        RESET_STATUS: resetStatus,
        FORCE_DELETE: forceDelete,
      },
    },
    available: {
      on: {
        DELETE: { guard: 'canDelete', target: 'deleting' },
        FORCE_DELETE: forceDelete,
        RESET_STATUS: resetStatus,
        READ_BEGIN: { actions: 'acquireReader' },
        RESTORE_BEGIN: { guard: 'noReaders', target: 'restoring', actions: 'acquireReader' },
      },
    },
    restoring: {
      tags: [TRANSIENT],
      // The reverting volume holds this snapshot as its reader; when the
      // revert ends (whichever way), giving the reader back ends restoring.
      meta: {
        doc: 'a volume is being reverted to this snapshot',
        movedOnBy: "the end of the volume's revert, whichever way it ends (READ_END); the volume's own recovery covers a lost revert",
      },
      on: { READ_END: { guard: 'hasReaders', target: 'available', actions: 'releaseReader' }, RESET_STATUS: resetStatus },
    },
    deleting: {
      tags: [TRANSIENT],
      meta: { step: 'delete', doc: 'the backend is deleting the snapshot' },
      on: {
        DELETED: 'deleted',
        BACKEND_FAILED: { target: 'error_deleting', actions: 'clearOperation' },
        WORKER_LOST: workerLost('snapshot', 'deleting', 'error_deleting'),
      },
    },
    error: {
      on: { DELETE: { guard: 'canDelete', target: 'deleting' }, FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus },
    },
    error_deleting: { on: { FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus } },
    deleted: { type: 'final' },
  },
});

export const snapshotModel = defineResource<C, E>({
  type: 'snapshot',
  noun: 'snapshot',
  machine: snapshotMachine,
  states: SNAPSHOT_STATES,
  statuses: SNAPSHOT_STATUSES,
  resettable: SNAPSHOT_RESETTABLE,
  context: snapshotContext,
  events: snapshotEvents,
  guards: snapshotGuards,
  effects: snapshotEffects,
  releases: { reader: 'READ_END' },
});
