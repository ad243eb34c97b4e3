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
  backupLeaseEffects,
  backupLeaseGuards,
  effectTable,
  guardTable,
  jsEffects,
  jsGuards,
  readerEffects,
  readerGuards,
  recoveryEffects,
  recoveryGuards,
  parkedState,
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

/** Statuses volstate runs no operation for, which an admin may still set (Cinder's): only a parked sub-state. */
const PARKED_ONLY = ['updating', 'unmanaging', 'backing-up'] as const;

export const SNAPSHOT_STATES = [
  'creating.backend',
  'creating.group',
  'creating.parked',
  'available',
  'restoring',
  'deleting.backend',
  'deleting.parked',
  'error',
  'error_deleting',
  ...PARKED_ONLY.map((s) => `${s}.parked` as const),
  'deleted',
] as const;
export type SnapshotState = (typeof SNAPSHOT_STATES)[number];
export const SNAPSHOT_STATUSES = statusesOf(SNAPSHOT_STATES);
/**
 * Statuses an admin may set with os-reset_status: every status of Cinder's
 * list but `deleted`. `creating`, `deleting` and those volstate runs no
 * operation for park the row in `<status>.parked`, which no worker takes;
 * `restoring` is entered as it is (no worker takes it either: a revert's end
 * moves it on, and without a revert only a reset or a force delete does).
 */
export const SNAPSHOT_RESETTABLE = ['available', 'error', 'error_deleting', 'restoring', 'creating', 'deleting', ...PARKED_ONLY] as const;
const SNAPSHOT_PARKED = ['creating', 'deleting', ...PARKED_ONLY] as const;

export const snapshotContext = {
  /** in-flight operations reading this snapshot (volumes being created from it) */
  readers: 'int',
  /** backups of this snapshot being made (machines/backup.ts): the snapshot shows `backing-up` meanwhile */
  backups: 'int',
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
  FORCE_DELETE: {
    by: 'api',
    verb: 'force-delete',
    request: 'os-force_delete',
    params: {},
    doc: 'admin: delete whatever the status (os-force_delete)',
  },
  RESET_STATUS: {
    by: 'api',
    verb: 'reset the status of',
    request: 'os-reset_status',
    params: { status: 'text' },
    doc: 'admin: set a resting status (os-reset_status)',
  },
  UPDATE_STATUS: {
    by: 'api',
    verb: 'update the status of',
    request: 'os-update_snapshot_status',
    params: { status: 'text', progress: 'text?' },
    doc: 'the service that took a snapshot itself (Nova, for assisted snapshots) reports how it ended (os-update_snapshot_status)',
  },
  READ_BEGIN: {
    by: 'link',
    verb: 'create a volume from',
    request: 'volume create with snapshot_id',
    params: {},
    doc: 'a volume is being created from this snapshot',
  },
  RESTORE_BEGIN: {
    by: 'link',
    verb: 'revert a volume to',
    request: 'revert',
    params: {},
    doc: 'a volume is being reverted to this snapshot',
  },
  READ_END: { by: 'link', params: {}, doc: 'an operation that read this snapshot ended' },
  BACKUP_BEGIN: {
    by: 'link',
    verb: 'back up',
    request: 'backup create with snapshot_id',
    params: {},
    doc: 'a backup of this snapshot is being made: one more backup',
  },
  BACKUP_END: { by: 'link', params: {}, doc: 'a backup of this snapshot ended, whichever way' },
  GROUPED: {
    by: 'link',
    params: {},
    doc: "a member of a group snapshot: sent in the group snapshot's create, it leaves the copy to the group snapshot's step",
  },
  GROUP_CREATED: { by: 'worker', params: {}, doc: "its group snapshot's step took every member's copy" },
  GROUP_FAILED: { by: 'worker', params: {}, doc: "its group snapshot's step failed a copy" },
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
  ...backupLeaseGuards<C, E>(),
  canDelete: allOf('noReaders', 'noBackups'),
  canForceDelete: allOf('unowned', 'noReaders', 'noBackups'),
  reportsAvailable: {
    unmet: "the reported status must be 'available' or 'error'",
    refusal: 'invalid',
    js: (_c, e) => 'status' in e && e.status === 'available',
    sql: ":status = 'available'",
  },
  reportsError: {
    unmet: "the reported status must be 'available' or 'error'",
    refusal: 'invalid',
    js: (_c, e) => 'status' in e && e.status === 'error',
    sql: ":status = 'error'",
  },
  canReportAvailable: allOf('unowned', 'reportsAvailable'),
  canReportError: allOf('unowned', 'reportsError'),
});

export const snapshotEffects = effectTable<C, E>()({
  ...readerEffects<C, E>(),
  ...recoveryEffects<C, E>(),
  ...backupLeaseEffects<C, E>(),
  recordProgress: {
    js: (_c, e) => ({ operation: { progress: 'progress' in e ? e.progress : null } }),
    sql: { operation: "jsonb_build_object('progress', :progress)" },
  },
});

/**
 * os-update_snapshot_status: a snapshot being created, but not by one of our
 * workers (a parked `creating`, as an admin's reset or a service that takes
 * the snapshot itself leaves it), ends as the caller reports: `available`
 * or `error`, with its progress recorded.
 */
const updateStatus = [
  { guard: 'canReportAvailable', target: '#snapshot.available', actions: 'recordProgress' },
  { guard: 'canReportError', target: '#snapshot.error', actions: 'recordProgress' },
] as const;

const resetStatus = resetTransitions('snapshot', SNAPSHOT_RESETTABLE, undefined, SNAPSHOT_PARKED);
const forceDelete = { guard: 'canForceDelete', target: '#snapshot.deleting' } as const;

/** The statuses volstate runs no operation for: a status with only its parked sub-state. */
const parkedOnly = Object.fromEntries(
  PARKED_ONLY.map((status) => [
    status,
    { initial: 'parked', on: { RESET_STATUS: resetStatus, FORCE_DELETE: forceDelete }, states: { parked: parkedState } },
  ]),
) as Record<
  (typeof PARKED_ONLY)[number],
  { initial: 'parked'; on: { RESET_STATUS: typeof resetStatus; FORCE_DELETE: typeof forceDelete }; states: { parked: typeof parkedState } }
>;

export const snapshotMachine = setup({
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- xstate's type witness: without it each state's meta is checked against {}, not StateMeta
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof snapshotGuards>(snapshotGuards),
  actions: jsEffects<C, E, typeof snapshotEffects>(snapshotEffects),
}).createMachine({
  id: 'snapshot',
  initial: 'creating',
  context: { readers: 0, backups: 0, size: 1, operation: null, owner: null },
  on: {
    READ_END: { guard: 'hasReaders', actions: 'releaseReader' },
    BACKUP_END: { guard: 'hasBackups', actions: 'removeBackup' },
  },
  states: {
    creating: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus, FORCE_DELETE: forceDelete },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: { step: 'create', holds: ['reader'], doc: 'the backend is taking the snapshot (the volume is held as a reader)' },
          on: {
            BACKEND_CREATED: { target: '#snapshot.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#snapshot.error', actions: 'clearOperation' },
            // Taking the snapshot again overwrites the partial copy: redo it.
            WORKER_LOST: workerLost('snapshot', 'creating.backend', 'error'),
            // Only in its group snapshot's create, before any worker can see it.
            GROUPED: { guard: 'unowned', target: 'group' },
          },
        },
        group: {
          tags: [TRANSIENT],
          meta: {
            holds: ['reader'],
            doc: "a member of a group snapshot: its group snapshot's step takes the copy (the volume is held as a reader)",
            movedOnBy:
              "its group snapshot's step, with every other member in one transaction (GROUP_CREATED, GROUP_FAILED); the group snapshot's own recovery covers a lost step, and its delete deletes a member it left here",
          },
          on: {
            GROUP_CREATED: { target: '#snapshot.available', actions: 'clearOperation' },
            GROUP_FAILED: { target: '#snapshot.error', actions: 'clearOperation' },
            DELETE: { guard: 'canDelete', target: '#snapshot.deleting' },
          },
        },
        parked: {
          meta: {
            doc: 'set by an admin (os-reset_status): no worker takes it; a reset, a force delete or os-update_snapshot_status leaves it',
          },
          on: { UPDATE_STATUS: updateStatus },
        },
      },
    },
    available: {
      on: {
        DELETE: { guard: 'canDelete', target: 'deleting' },
        FORCE_DELETE: forceDelete,
        RESET_STATUS: resetStatus,
        READ_BEGIN: { actions: 'acquireReader' },
        BACKUP_BEGIN: { actions: 'addBackup' },
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
      on: {
        READ_END: { guard: 'hasReaders', target: 'available', actions: 'releaseReader' },
        RESET_STATUS: resetStatus,
        FORCE_DELETE: forceDelete,
      },
    },
    deleting: {
      initial: 'backend',
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: { step: 'delete', doc: 'the backend is deleting the snapshot' },
          on: {
            DELETED: '#snapshot.deleted',
            BACKEND_FAILED: { target: '#snapshot.error_deleting', actions: 'clearOperation' },
            WORKER_LOST: workerLost('snapshot', 'deleting.backend', 'error_deleting'),
          },
        },
        // A delete in flight is not reset (the backend is at it); a parked one is.
        parked: { ...parkedState, on: { RESET_STATUS: resetStatus, FORCE_DELETE: forceDelete } },
      },
    },
    error: {
      on: { DELETE: { guard: 'canDelete', target: 'deleting' }, FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus },
    },
    error_deleting: { on: { FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus } },
    ...parkedOnly,
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
  releases: { reader: 'READ_END', backup: 'BACKUP_END' },
  holdsForLife: ['dependent'],
});
