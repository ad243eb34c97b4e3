/**
 * The volume machine. Pure: no I/O, no database, no HTTP.
 *
 * Top-level states are the Cinder statuses a client sees; sub-states are the
 * steps of an operation. Every transition here becomes ONE compare-and-swap
 * statement in `db/` (sources, guards, targets and effects are read from this
 * file), so what is written here is exactly what the database enforces.
 *
 * Transient states (tagged) are those in which a backend operation is in
 * flight: creating, extending, reverting, deleting; refusals there are
 * "busy" (409). The attachment states (reserved, attaching, detaching)
 * wait on a client, not on a backend: refusals there are "invalid" (400),
 * as real Cinder answers for them. How the status follows the attachments
 * is in attachment-counts.ts.
 */
import { setup } from 'xstate';
import {
  attachmentCountColumns,
  attachmentDeltaParams,
  attachmentEffects,
  attachmentGuards,
  followAttachments,
} from './attachment-counts.ts';
import {
  allOf,
  backupLeaseEffects,
  backupLeaseGuards,
  dependentEffects,
  effectTable,
  guardTable,
  jsEffects,
  jsGuards,
  readerEffects,
  readerGuards,
  recoveryEffects,
  recoveryGuards,
  resetGuards,
  parkedState,
  resetTransitions,
  statusesOf,
  TRANSIENT,
  unownedGuard,
  workerLost,
  type ContextOf,
  type ContextSpec,
  type EventOf,
  type EventSpecs,
  type StateMeta,
} from './model.ts';
import { defineResource } from './resource.ts';

/**
 * Statuses volstate runs no operation for, which an admin may still set
 * with os-reset_status (they are Cinder's): each is a status whose only
 * sub-state is `parked` (see model.ts, parkedState).
 */
const PARKED_ONLY = ['maintenance', 'managing', 'error_managing', 'backing-up', 'error_backing-up', 'downloading', 'uploading'] as const;

/** Every leaf state, as stored in `resource_states.state`. */
export const VOLUME_STATES = [
  'creating.db',
  'creating.scheduling',
  'creating.backend',
  'creating.parked',
  'available',
  'reserved',
  'attaching',
  'in-use',
  'detaching',
  'extending.backend',
  'extending.parked',
  'reverting.backend',
  'reverting.parked',
  'deleting.backend',
  'deleting.parked',
  'error',
  'error_extending',
  'error_deleting',
  'retyping.backend',
  'retyping.parked',
  'awaiting-transfer.offered',
  'awaiting-transfer.parked',
  'restoring-backup.backend',
  'restoring-backup.parked',
  'error_restoring',
  ...PARKED_ONLY.map((s) => `${s}.parked` as const),
  'deleted',
] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

/** Client-visible statuses (the top-level states). */
export const VOLUME_STATUSES = statusesOf(VOLUME_STATES);
export type VolumeStatus = (typeof VOLUME_STATUSES)[number];

/**
 * Statuses an admin may set with os-reset_status: every status of Cinder's
 * list but `deleted`. The resting ones are entered as they are (`available`
 * only without attachments, `in-use` only with one); a status of work
 * (`creating`, `extending`, `reverting`, `deleting`, and those volstate has
 * no operation for) parks the row in `<status>.parked`, which no worker takes.
 */
export const VOLUME_RESETTABLE = [
  'available',
  'in-use',
  'error',
  'error_extending',
  'error_deleting',
  'reserved',
  'attaching',
  'detaching',
  'creating',
  'extending',
  'reverting',
  'deleting',
  'retyping',
  'awaiting-transfer',
  'restoring-backup',
  'error_restoring',
  ...PARKED_ONLY,
] as const;
const VOLUME_PARKED = [
  'creating',
  'extending',
  'reverting',
  'deleting',
  'retyping',
  'awaiting-transfer',
  'restoring-backup',
  ...PARKED_ONLY,
] as const;

/** Row columns the machine reads and writes. */
export const volumeContext = {
  /** in-flight operations reading this volume (snapshots being taken, clones) */
  readers: 'int',
  /** live snapshots of this volume */
  dependents: 'int',
  /** backups of this volume being made (machines/backup.ts): the volume shows `backing-up` meanwhile */
  backups: 'int',
  /** GiB */
  size: 'int',
  /** arguments of the operation in flight, e.g. {"new_size": 3} while extending */
  operation: 'jsonb',
  /** the worker running a step on this row (read-only here: the enforcer sets it) */
  owner: 'text?',
  /** may have several attachments at once (set at creation) */
  multiattach: 'bool',
  /** live attachments by status (see attachment-counts.ts) */
  ...attachmentCountColumns,
} as const satisfies ContextSpec;
export type VolumeContext = ContextOf<typeof volumeContext>;

export const volumeEvents = {
  DELETE: { by: 'api', verb: 'delete', request: 'delete', params: {}, doc: 'delete the volume (DELETE /volumes/{id})' },
  DELETE_CASCADE: {
    by: 'api',
    verb: 'delete',
    request: 'delete with cascade=True',
    params: {},
    doc: 'delete the volume and its snapshots (?cascade=True)',
  },
  FORCE_DELETE: {
    by: 'api',
    verb: 'force-delete',
    request: 'os-force_delete',
    params: {},
    doc: 'admin: delete whatever the status (os-force_delete)',
  },
  FORCE_DELETE_CASCADE: {
    by: 'api',
    verb: 'force-delete',
    request: 'delete with cascade=True&force=True',
    params: {},
    doc: 'admin: force delete with its snapshots',
  },
  EXTEND: {
    by: 'api',
    verb: 'extend',
    request: 'os-extend',
    params: { new_size: 'int', in_use: 'bool' },
    doc: 'grow the volume (os-extend); in_use: an attached volume may be extended (microversion 3.42)',
  },
  RESET_STATUS: {
    by: 'api',
    verb: 'reset the status of',
    request: 'os-reset_status',
    params: { status: 'text' },
    doc: 'admin: set a resting status (os-reset_status)',
  },
  REVERT: { by: 'api', verb: 'revert', request: 'revert', params: { snapshot_id: 'text' }, doc: 'revert to a snapshot (revert, 3.40)' },
  RETYPE: {
    by: 'api',
    verb: 'retype',
    request: 'os-retype',
    params: { type_id: 'text' },
    doc: 'change the volume type, on the same backend (os-retype)',
  },
  TRANSFER_OFFER: {
    by: 'api',
    verb: 'transfer',
    request: 'transfer create',
    params: { transfer_id: 'text' },
    doc: 'offer the volume to another project (POST /volume-transfers): nothing else happens to it until the offer ends',
  },
  TRANSFER_ACCEPT: {
    by: 'api',
    verb: 'accept a transfer of',
    request: 'transfer accept',
    params: { transfer_id: 'text' },
    doc: 'another project accepted the offer with its auth key; the volume is theirs (ownership and quota usage move in the same transaction)',
  },
  TRANSFER_CANCEL: {
    by: 'api',
    verb: 'cancel a transfer of',
    request: 'transfer delete',
    params: { transfer_id: 'text' },
    doc: 'the offer was withdrawn (DELETE /volume-transfers/{id})',
  },
  SNAPSHOT_BEGIN: {
    by: 'link',
    verb: 'take a snapshot of',
    request: 'snapshot create',
    params: { force: 'bool' },
    doc: 'a snapshot of this volume is being taken: one more reader, one more dependent',
  },
  READ_BEGIN: {
    by: 'link',
    verb: 'clone',
    request: 'clone (create with source_volid)',
    params: {},
    doc: 'a volume is being cloned from this one: one more reader',
  },
  READ_END: { by: 'link', params: {}, doc: 'an operation that read this volume ended' },
  BACKUP_BEGIN: {
    by: 'link',
    verb: 'back up',
    request: 'backup create',
    params: { force: 'bool' },
    doc: 'a backup of this volume is being made: one more backup (it reads a consistent copy, so the volume stays usable)',
  },
  BACKUP_END: { by: 'link', params: {}, doc: 'a backup of this volume ended, whichever way' },
  RESTORE_BACKUP: {
    by: 'link',
    verb: 'restore a backup onto',
    request: 'backup restore with volume_id',
    params: { backup_id: 'text', backup_size: 'int' },
    doc: 'a backup is being restored onto this volume (POST /backups/{id}/restore): its data is overwritten',
  },
  SNAPSHOT_GONE: { by: 'link', params: {}, doc: 'a snapshot of this volume was deleted' },
  ATTACHMENTS_CHANGED: {
    by: 'link',
    verb: 'attach or detach',
    request: 'attachment create or delete',
    params: attachmentDeltaParams,
    doc: 'an attachment of this volume changed status; the volume follows',
  },
  SCHEDULE: { by: 'worker', params: {}, doc: 'a scheduler took the new volume' },
  SCHEDULED: {
    by: 'worker',
    params: { backend: 'text' },
    data: { backend: 'backend' },
    doc: 'a backend was chosen (recorded on the volume)',
  },
  SCHEDULE_FAILED: { by: 'worker', params: {}, doc: 'no backend can hold the volume' },
  BACKEND_CREATED: { by: 'worker', params: {}, doc: 'the backend created the volume' },
  RETYPED: { by: 'worker', params: {}, doc: 'the volume is of its new type' },
  BACKEND_FAILED: { by: 'worker', params: {}, doc: 'the backend failed the operation' },
  EXTENDED: { by: 'worker', params: {}, doc: 'the backend grew the volume' },
  REVERTED: { by: 'worker', params: {}, doc: 'the backend reverted the volume to the snapshot' },
  RESTORED: { by: 'worker', params: {}, doc: "the backup's data is written onto the volume" },
  DELETED: { by: 'worker', params: {}, doc: 'the backend deleted the volume' },
  WORKER_LOST: { by: 'worker', params: {}, doc: 'the worker running the step died; sent by any live worker (see model.ts, recovery)' },
} as const satisfies EventSpecs;
export type VolumeEvent = EventOf<typeof volumeEvents>;
export type VolumeEventType = VolumeEvent['type'];

type C = VolumeContext;
type E = VolumeEvent;

export const volumeGuards = guardTable<C, E>()({
  ...readerGuards<C, E>('a snapshot or a clone of it'),
  ...attachmentGuards<C, E>(),
  noSnapshots: { unmet: 'it has snapshots', refusal: 'invalid', js: (c) => c.dependents === 0, sql: 'dependents = 0' },
  /** a create that restores a backup (its operation names it from the start): the backup lane's */
  fromBackup: {
    unmet: 'it is not being created from a backup',
    refusal: 'invalid',
    js: (c) => c.operation !== null && typeof c.operation.backup_id === 'string',
    sql: "(operation ->> 'backup_id') IS NOT NULL",
  },
  ...backupLeaseGuards<C, E>(),
  fitsBackup: {
    unmet: 'it is smaller than the backup',
    refusal: 'invalid',
    js: (c, e) => 'backup_size' in e && e.backup_size <= c.size,
    sql: ':backup_size <= size',
  },
  backupForced: {
    unmet: 'it is in-use: backing up an in-use volume must use the force flag',
    refusal: 'invalid',
    js: (_c, e) => 'force' in e && e.force === true,
    sql: ':force',
  },
  hasSnapshots: { unmet: 'it has no snapshots', refusal: 'invalid', js: (c) => c.dependents > 0, sql: 'dependents > 0' },
  grows: {
    unmet: 'the new size must be larger than the current size',
    refusal: 'invalid',
    js: (c, e) => 'new_size' in e && e.new_size > c.size,
    sql: ':new_size > size',
  },
  inUseExtendAllowed: {
    unmet: 'it is in-use: extending an attached volume needs microversion 3.42 or later',
    refusal: 'invalid',
    js: (_c, e) => 'in_use' in e && e.in_use === true,
    sql: ':in_use',
  },
  forced: {
    unmet: 'it is in-use: pass force=True, or use microversion 3.66 or later',
    refusal: 'invalid',
    js: (_c, e) => 'force' in e && e.force === true,
    sql: ':force',
  },
  offeredBy: {
    unmet: 'it is not offered by this transfer',
    refusal: 'invalid',
    js: (c, e) => 'transfer_id' in e && c.operation?.['transfer_id'] === e.transfer_id,
    sql: "operation ->> 'transfer_id' = :transfer_id",
  },
  extendRecorded: {
    unmet: 'no extend is recorded',
    refusal: 'invalid',
    js: (c) => typeof c.operation?.['new_size'] === 'number',
    sql: "jsonb_typeof(operation -> 'new_size') = 'number'",
  },
  unowned: unownedGuard<C, E>(),
  ...recoveryGuards<C, E>(),
  ...resetGuards<C, E, typeof VOLUME_RESETTABLE>(VOLUME_RESETTABLE, { available: 'noAttachments', 'in-use': 'hasAttached' }),
  canDelete: allOf('noReaders', 'noBackups', 'noSnapshots', 'noAttachments'),
  canDeleteCascade: allOf('noReaders', 'noBackups', 'noAttachments'),
  canForceDelete: allOf('unowned', 'noReaders', 'noBackups', 'noSnapshots', 'noAttachments'),
  canForceDeleteCascade: allOf('unowned', 'noReaders', 'noBackups', 'noAttachments'),
  // Nothing may read the volume while a backup is written over it, and no backup of it may be in flight.
  canRestoreBackup: allOf('noReaders', 'noBackups', 'fitsBackup'),
  canExtend: allOf('noReaders', 'grows'),
  canExtendInUse: allOf('inUseExtendAllowed', 'noReaders', 'grows'),
  extendedInUse: allOf('extendRecorded', 'hasAttached'),
});

export const volumeEffects = effectTable<C, E>()({
  ...readerEffects<C, E>(),
  ...attachmentEffects<C, E>(),
  ...dependentEffects<C, E>(),
  ...backupLeaseEffects<C, E>(),
  recordRestore: {
    js: (_c, e) => ({ operation: { backup_id: 'backup_id' in e ? e.backup_id : null } }),
    sql: { operation: "jsonb_build_object('backup_id', :backup_id)" },
  },
  recordExtend: {
    js: (_c, e) => ({ operation: { new_size: 'new_size' in e ? e.new_size : null } }),
    sql: { operation: "jsonb_build_object('new_size', :new_size)" },
  },
  finishExtend: {
    js: (c) => ({ size: c.operation?.['new_size'] as number, operation: null }),
    sql: { size: "(operation ->> 'new_size')::int", operation: 'NULL' },
  },
  ...recoveryEffects<C, E>(),
  recordRetype: {
    js: (_c, e) => ({ operation: { type_id: 'type_id' in e ? e.type_id : null } }),
    sql: { operation: "jsonb_build_object('type_id', :type_id)" },
  },
  recordTransfer: {
    js: (_c, e) => ({ operation: { transfer_id: 'transfer_id' in e ? e.transfer_id : null } }),
    sql: { operation: "jsonb_build_object('transfer_id', :transfer_id)" },
  },
  recordRevert: {
    js: (_c, e) => ({ operation: { snapshot_id: 'snapshot_id' in e ? e.snapshot_id : null } }),
    sql: { operation: "jsonb_build_object('snapshot_id', :snapshot_id)" },
  },
});

const resetStatus = resetTransitions('volume', VOLUME_RESETTABLE, 'clearOperation' as const, VOLUME_PARKED);
const force = {
  FORCE_DELETE: { guard: 'canForceDelete', target: '#volume.deleting', actions: 'clearOperation' },
  FORCE_DELETE_CASCADE: { guard: 'canForceDeleteCascade', target: '#volume.deleting', actions: 'clearOperation' },
} as const;
const deletable = {
  DELETE: { guard: 'canDelete', target: '#volume.deleting' },
  DELETE_CASCADE: { guard: 'canDeleteCascade', target: '#volume.deleting' },
  ...force,
  RESET_STATUS: resetStatus,
} as const;
/** In the error states an attachment may still be removed (the status stays), not added. */
const detachOnly = { ATTACHMENTS_CHANGED: { guard: 'detachOnly', actions: 'countAttachments' } } as const;
const attachmentCycle = { ATTACHMENTS_CHANGED: followAttachments('volume'), RESET_STATUS: resetStatus, ...force } as const;

/** The statuses volstate runs no operation for: a status with only its parked sub-state. */
const parkedOnly = Object.fromEntries(
  PARKED_ONLY.map((status) => [
    status,
    { initial: 'parked', on: { RESET_STATUS: resetStatus, ...force }, states: { parked: parkedState } },
  ]),
) as Record<
  (typeof PARKED_ONLY)[number],
  { initial: 'parked'; on: { RESET_STATUS: typeof resetStatus } & typeof force; states: { parked: typeof parkedState } }
>;

export const volumeMachine = setup({
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- xstate's type witness: without it each state's meta is checked against {}, not StateMeta
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof volumeGuards>(volumeGuards),
  actions: jsEffects<C, E, typeof volumeEffects>(volumeEffects),
}).createMachine({
  id: 'volume',
  initial: 'creating',
  context: {
    readers: 0,
    dependents: 0,
    backups: 0,
    size: 1,
    operation: null,
    owner: null,
    multiattach: false,
    att_reserved: 0,
    att_attaching: 0,
    att_attached: 0,
    att_detaching: 0,
    att_error: 0,
  },
  // Reader bookkeeping is accepted in every state but the final one: a
  // reader may finish while an admin has reset the volume's status.
  on: {
    READ_END: { guard: 'hasReaders', actions: 'releaseReader' },
    SNAPSHOT_GONE: { guard: 'hasSnapshots', actions: 'removeDependent' },
    BACKUP_END: { guard: 'hasBackups', actions: 'removeBackup' },
  },
  states: {
    creating: {
      initial: 'db',
      on: { RESET_STATUS: resetStatus, ...force },
      // A clone or a volume from a snapshot reads its source for the whole create.
      // Worker lost: scheduling starts again; a create on the backend is
      // redone (creating an existing volume of that size succeeds).
      states: {
        db: {
          tags: [TRANSIENT],
          meta: { step: 'schedule', holds: ['reader'], doc: 'recorded; waiting for a scheduler' },
          on: { SCHEDULE: 'scheduling', WORKER_LOST: workerLost('volume', 'creating.db', 'error') },
        },
        scheduling: {
          tags: [TRANSIENT],
          meta: { step: 'schedule', holds: ['reader'], doc: 'a scheduler is choosing a backend' },
          on: {
            SCHEDULED: 'backend',
            SCHEDULE_FAILED: { target: '#volume.error', actions: 'clearOperation' },
            WORKER_LOST: workerLost('volume', 'creating.db', 'error'),
          },
        },
        backend: {
          tags: [TRANSIENT],
          meta: {
            step: 'create',
            holds: ['reader'],
            backupLane: 'fromBackup',
            doc: 'the backend is creating the volume (from a backup: and restoring it onto the volume)',
          },
          on: {
            BACKEND_CREATED: { target: '#volume.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#volume.error', actions: 'clearOperation' },
            WORKER_LOST: workerLost('volume', 'creating.backend', 'error'),
          },
        },
        parked: parkedState,
      },
    },
    available: {
      on: {
        ...deletable,
        EXTEND: { guard: 'canExtend', target: 'extending', actions: 'recordExtend' },
        REVERT: { guard: 'noReaders', target: 'reverting', actions: 'recordRevert' },
        RETYPE: { guard: 'noReaders', target: 'retyping', actions: 'recordRetype' },
        TRANSFER_OFFER: { guard: 'noReaders', target: 'awaiting-transfer', actions: 'recordTransfer' },
        SNAPSHOT_BEGIN: { actions: ['acquireReader', 'addDependent'] },
        READ_BEGIN: { actions: 'acquireReader' },
        BACKUP_BEGIN: { actions: 'addBackup' },
        RESTORE_BACKUP: { guard: 'canRestoreBackup', target: 'restoring-backup', actions: 'recordRestore' },
        ATTACHMENTS_CHANGED: followAttachments('volume'),
      },
    },
    reserved: { on: attachmentCycle },
    attaching: { on: attachmentCycle },
    'in-use': {
      on: {
        ...attachmentCycle,
        EXTEND: { guard: 'canExtendInUse', target: 'extending', actions: 'recordExtend' },
        SNAPSHOT_BEGIN: { guard: 'forced', actions: ['acquireReader', 'addDependent'] },
        RETYPE: { guard: 'noReaders', target: 'retyping', actions: 'recordRetype' },
        READ_BEGIN: { actions: 'acquireReader' },
        BACKUP_BEGIN: { guard: 'backupForced', actions: 'addBackup' },
      },
    },
    detaching: { on: attachmentCycle },
    extending: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus, ...force },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: { step: 'extend', doc: 'the backend is growing the volume' },
          on: {
            EXTENDED: [
              { guard: 'extendedInUse', target: '#volume.in-use', actions: 'finishExtend' },
              { guard: 'extendRecorded', target: '#volume.available', actions: 'finishExtend' },
            ],
            BACKEND_FAILED: { target: '#volume.error_extending', actions: 'clearOperation' },
            // Extending to a size the volume already has succeeds: redo it.
            WORKER_LOST: workerLost('volume', 'extending.backend', 'error_extending'),
          },
        },
        parked: parkedState,
      },
    },
    reverting: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus, ...force },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: { step: 'revert', holds: ['reader'], doc: 'the backend is reverting the volume to a snapshot (held as a reader)' },
          on: {
            REVERTED: { target: '#volume.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#volume.error', actions: 'clearOperation' },
            // Copying the snapshot back again gives the same volume: redo it.
            WORKER_LOST: workerLost('volume', 'reverting.backend', 'error'),
          },
        },
        parked: parkedState,
      },
    },
    deleting: {
      initial: 'backend',
      states: {
        backend: {
          tags: [TRANSIENT],
          // With ?cascade its snapshots are deleted first: the step waits for them.
          meta: { step: 'delete', ready: 'noSnapshots', doc: 'the backend is deleting the volume (after its snapshots)' },
          on: {
            DELETED: { guard: 'noSnapshots', target: '#volume.deleted' },
            BACKEND_FAILED: { target: '#volume.error_deleting', actions: 'clearOperation' },
            // Deleting what is already gone succeeds: redo it (as Cinder's cleanup does).
            WORKER_LOST: workerLost('volume', 'deleting.backend', 'error_deleting'),
          },
        },
        // A delete in flight is not reset (the backend is at it); a parked one is.
        parked: { ...parkedState, on: { RESET_STATUS: resetStatus, ...force } },
      },
    },
    retyping: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus, ...force },
      states: {
        backend: {
          tags: [TRANSIENT],
          // On one backend a retype changes what the volume is recorded as, not its data.
          meta: { step: 'retype', doc: 'the volume is taking its new type' },
          on: {
            // Back to where it came from, whichever way the retype ends.
            RETYPED: [
              { guard: 'hasAttached', target: '#volume.in-use', actions: 'clearOperation' },
              { target: '#volume.available', actions: 'clearOperation' },
            ],
            BACKEND_FAILED: [
              { guard: 'hasAttached', target: '#volume.in-use', actions: 'clearOperation' },
              { target: '#volume.available', actions: 'clearOperation' },
            ],
            // Recording the new type again gives the same volume: redo it.
            WORKER_LOST: workerLost('volume', 'retyping.backend', 'error'),
          },
        },
        parked: parkedState,
      },
    },
    'awaiting-transfer': {
      initial: 'offered',
      on: { RESET_STATUS: resetStatus, ...force },
      states: {
        // Not transient: the offer waits on a person (another project's
        // accept, or the owner's cancel), so refusals here are 400, as Cinder's.
        offered: {
          meta: { doc: 'offered to another project; the transfer row holds the hashed auth key' },
          on: {
            TRANSFER_ACCEPT: { guard: 'offeredBy', target: '#volume.available', actions: 'clearOperation' },
            TRANSFER_CANCEL: { guard: 'offeredBy', target: '#volume.available', actions: 'clearOperation' },
          },
        },
        parked: parkedState,
      },
    },
    'restoring-backup': {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus, ...force },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: {
            step: 'restore',
            holds: ['reader'],
            backupLane: true,
            doc: "the backup's data is being written onto the volume (the backup held as a reader)",
          },
          on: {
            RESTORED: { target: '#volume.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#volume.error_restoring', actions: 'clearOperation' },
            // Writing the backup's data again gives the same volume: redo it.
            WORKER_LOST: workerLost('volume', 'restoring-backup.backend', 'error_restoring'),
          },
        },
        parked: parkedState,
      },
    },
    error: { on: { ...deletable, ...detachOnly } },
    error_restoring: { on: { ...deletable, ...detachOnly } },
    error_extending: { on: { ...deletable, ...detachOnly } },
    error_deleting: { on: { ...force, RESET_STATUS: resetStatus, ...detachOnly } },
    ...parkedOnly,
    deleted: { type: 'final' },
  },
});

export const volumeModel = defineResource<C, E>({
  type: 'volume',
  noun: 'volume',
  machine: volumeMachine,
  states: VOLUME_STATES,
  statuses: VOLUME_STATUSES,
  resettable: VOLUME_RESETTABLE,
  context: volumeContext,
  events: volumeEvents,
  guards: volumeGuards,
  effects: volumeEffects,
  releases: { reader: 'READ_END', dependent: 'SNAPSHOT_GONE', backup: 'BACKUP_END' },
});
