/**
 * The backup machine. Pure: no I/O, no database, no HTTP.
 *
 * A backup reads its source the way a clone does, not by taking the
 * volume's status (Cinder's `backing-up`): while it is being made it holds
 * a `backup` lease on its volume or snapshot (the source's `backups`
 * counter, changed in the transaction that inserts the backup), which
 * keeps the source from being deleted and nothing else. The worker reads
 * a consistent image of the source (the driver's temporary copy of a
 * volume, or the snapshot itself), so attach, detach, extend and revert of
 * the volume stay allowed while its backup runs (docs/backups.md).
 *
 * An incremental backup holds a `dependent` lease on its parent for as long
 * as it exists (the parent's `dependents`: Cinder's num_dependent_backups),
 * so a parent with children cannot be deleted — a guard in the CAS, not a
 * list read before a blind write. A volume being restored from a backup, or
 * created from one, holds a `reader` lease on it: the backup is `restoring`
 * while it has readers (several volumes may read one backup at once) and
 * cannot be deleted meanwhile.
 */
import { setup } from 'xstate';
import {
  allOf,
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

export const BACKUP_STATES = [
  'creating.backend',
  'creating.import',
  'available',
  'restoring',
  'deleting.backend',
  'error',
  'error_deleting',
  'deleted',
] as const;
export type BackupState = (typeof BACKUP_STATES)[number];
export const BACKUP_STATUSES = statusesOf(BACKUP_STATES);

/** Cinder's os-reset_status for backups takes these two only (validators.py _validate_backup_status). */
export const BACKUP_RESETTABLE = ['available', 'error'] as const;

export const backupContext = {
  /** volumes being restored from it, or created from it */
  readers: 'int',
  /** incremental backups whose parent it is (Cinder's num_dependent_backups) */
  dependents: 'int',
  /** GiB, its source's size when it was taken */
  size: 'int',
  /** the step's lost attempts while one is in flight (see model.ts, recovery) */
  operation: 'jsonb',
  /** the worker running a step on this row (read-only here: the enforcer sets it) */
  owner: 'text?',
} as const satisfies ContextSpec;
export type BackupContext = ContextOf<typeof backupContext>;

export const backupEvents = {
  DELETE: { by: 'api', verb: 'delete', request: 'delete', params: {}, doc: 'delete the backup (DELETE /backups/{id})' },
  FORCE_DELETE: {
    by: 'api',
    verb: 'force-delete',
    request: 'os-force_delete',
    params: {},
    doc: 'admin: delete from any status no worker is in (os-force_delete)',
  },
  RESET_STATUS: {
    by: 'api',
    verb: 'reset the status of',
    request: 'os-reset_status',
    params: { status: 'text' },
    doc: "admin: set 'available' or 'error' (os-reset_status)",
  },
  IMPORT: {
    by: 'api',
    verb: 'import',
    request: 'import_record',
    params: {},
    doc: 'admin: the new backup is an imported record (POST /backups/import_record): its objects are checked, not written',
  },
  RESTORE_BEGIN: {
    by: 'link',
    verb: 'restore',
    request: 'restore, or volume create with backup_id',
    params: {},
    doc: 'a volume is being restored from this backup (or created from it): one more reader',
  },
  READ_END: { by: 'link', params: {}, doc: 'a restore that read this backup ended' },
  CHILD_BEGIN: {
    by: 'link',
    verb: 'make an incremental backup on',
    request: 'backup create with incremental=True',
    params: {},
    doc: 'an incremental backup takes this one as its parent: one more dependent',
  },
  CHILD_GONE: { by: 'link', params: {}, doc: 'an incremental backup whose parent this is was deleted' },
  BACKED_UP: { by: 'worker', params: {}, doc: 'every chunk and the metadata are written' },
  BACKEND_FAILED: { by: 'worker', params: {}, doc: 'the backup driver failed the operation' },
  DELETED: { by: 'worker', params: {}, doc: 'its chunks and metadata are deleted' },
  WORKER_LOST: { by: 'worker', params: {}, doc: 'the worker running the step died; sent by any live worker (see model.ts, recovery)' },
} as const satisfies EventSpecs;
export type BackupEvent = EventOf<typeof backupEvents>;

type C = BackupContext;
type E = BackupEvent;

export const backupGuards = guardTable<C, E>()({
  ...readerGuards<C, E>('a restore from it'),
  unowned: unownedGuard<C, E>(),
  ...recoveryGuards<C, E>(),
  ...resetGuards<C, E, typeof BACKUP_RESETTABLE>(BACKUP_RESETTABLE),
  noDependents: {
    unmet: 'incremental backups exist for this backup',
    refusal: 'invalid',
    js: (c) => c.dependents === 0,
    sql: 'dependents = 0',
  },
  hasDependents: { unmet: 'it has no incremental backups', refusal: 'invalid', js: (c) => c.dependents > 0, sql: 'dependents > 0' },
  lastReader: { unmet: 'other restores read it', refusal: 'invalid', js: (c) => c.readers === 1, sql: 'readers = 1' },
  canDelete: allOf('noReaders', 'noDependents'),
  canForceDelete: allOf('unowned', 'noReaders', 'noDependents'),
});

export const backupEffects = effectTable<C, E>()({
  ...readerEffects<C, E>(),
  ...recoveryEffects<C, E>(),
  ...dependentEffects<C, E>(),
});

const resetStatus = resetTransitions('backup', BACKUP_RESETTABLE, 'clearOperation' as const);
const forceDelete = { guard: 'canForceDelete', target: '#backup.deleting', actions: 'clearOperation' } as const;

export const backupMachine = setup({
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- xstate's type witness: without it each state's meta is checked against {}, not StateMeta
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof backupGuards>(backupGuards),
  actions: jsEffects<C, E, typeof backupEffects>(backupEffects),
}).createMachine({
  id: 'backup',
  initial: 'creating',
  context: { readers: 0, dependents: 0, size: 1, operation: null, owner: null },
  // Lease bookkeeping is accepted in every state but the final one: a
  // restore may end, or a child be deleted, after an admin's reset.
  on: {
    READ_END: { guard: 'hasReaders', actions: 'releaseReader' },
    CHILD_GONE: { guard: 'hasDependents', actions: 'removeDependent' },
  },
  states: {
    creating: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus, FORCE_DELETE: forceDelete },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: {
            step: 'create',
            holds: ['backup'],
            backupLane: true,
            doc: 'the worker is reading the source and writing chunks (the source is held by a backup lease)',
          },
          on: {
            BACKED_UP: { target: '#backup.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#backup.error', actions: 'clearOperation' },
            // Chunks already written and recorded in the backup's journal are kept: the step resumes after them.
            WORKER_LOST: workerLost('backup', 'creating.backend', 'error'),
            // Sent only in the transaction that inserts an imported backup, before any worker can see it.
            IMPORT: { guard: 'unowned', target: 'import' },
          },
        },
        import: {
          tags: [TRANSIENT],
          meta: { step: 'import', backupLane: true, doc: "the worker checks that the imported record's objects are in the store, whole" },
          on: {
            BACKED_UP: { target: '#backup.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#backup.error', actions: 'clearOperation' },
            WORKER_LOST: workerLost('backup', 'creating.import', 'error'),
          },
        },
      },
    },
    available: {
      on: {
        DELETE: { guard: 'canDelete', target: 'deleting' },
        FORCE_DELETE: forceDelete,
        RESET_STATUS: resetStatus,
        RESTORE_BEGIN: { target: 'restoring', actions: 'acquireReader' },
        CHILD_BEGIN: { actions: 'addDependent' },
      },
    },
    restoring: {
      tags: [TRANSIENT],
      meta: {
        doc: 'one or more volumes are being restored from it (held as readers)',
        movedOnBy:
          "the end of the last restore reading it, whichever way it ends (READ_END); the volume's own recovery covers a lost restore",
      },
      on: {
        // More restores may read it at once: reading never changes it.
        RESTORE_BEGIN: { actions: 'acquireReader' },
        CHILD_BEGIN: { actions: 'addDependent' },
        READ_END: [
          { guard: 'lastReader', target: 'available', actions: 'releaseReader' },
          { guard: 'hasReaders', actions: 'releaseReader' },
        ],
        RESET_STATUS: resetStatus,
      },
    },
    deleting: {
      initial: 'backend',
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: { step: 'delete', doc: 'the worker is deleting its chunks and metadata' },
          on: {
            DELETED: '#backup.deleted',
            BACKEND_FAILED: { target: '#backup.error', actions: 'clearOperation' },
            // Deleting what is already gone succeeds: redo it.
            WORKER_LOST: workerLost('backup', 'deleting.backend', 'error_deleting'),
          },
        },
      },
    },
    error: { on: { DELETE: { guard: 'canDelete', target: 'deleting' }, FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus } },
    error_deleting: { on: { FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus } },
    deleted: { type: 'final' },
  },
});

export const backupModel = defineResource<C, E>({
  type: 'backup',
  noun: 'backup',
  machine: backupMachine,
  states: BACKUP_STATES,
  statuses: BACKUP_STATUSES,
  resettable: BACKUP_RESETTABLE,
  context: backupContext,
  events: backupEvents,
  guards: backupGuards,
  effects: backupEffects,
  releases: { reader: 'READ_END', dependent: 'CHILD_GONE' },
});
