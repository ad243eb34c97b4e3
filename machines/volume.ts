/**
 * The volume machine. Pure: no I/O, no database, no HTTP.
 *
 * Top-level states are the Cinder statuses a client sees; sub-states are the
 * steps of an operation. Every transition here becomes ONE compare-and-swap
 * statement in `db/` (sources, guards, targets and effects are read from this
 * file), so what is written here is exactly what the database enforces.
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
  resetTransitions,
  statusesOf,
  resetGuards,
  unownedGuard,
  TRANSIENT,
  type ContextOf,
  type ContextSpec,
  type EventOf,
  type EventSpecs,
  type StateMeta,
} from './model.ts';
import { defineResource } from './resource.ts';

/** Every leaf state, as stored in `resource_states.state`. */
export const VOLUME_STATES = [
  'creating.db',
  'creating.scheduling',
  'creating.backend',
  'available',
  'extending',
  'deleting',
  'error',
  'error_extending',
  'error_deleting',
  'deleted',
] as const;
export type VolumeState = (typeof VOLUME_STATES)[number];

/** Client-visible statuses (the top-level states). */
export const VOLUME_STATUSES = statusesOf(VOLUME_STATES);
export type VolumeStatus = (typeof VOLUME_STATUSES)[number];

/** Statuses an admin may set with os-reset_status: the resting ones. */
export const VOLUME_RESETTABLE = ['available', 'error', 'error_extending', 'error_deleting'] as const;

/** Row columns the machine reads and writes. */
export const volumeContext = {
  /** in-flight operations reading this volume (snapshots being taken, clones) */
  readers: 'int',
  /** live snapshots of this volume */
  dependents: 'int',
  /** GiB */
  size: 'int',
  /** arguments of the operation in flight, e.g. {"new_size": 3} while extending */
  operation: 'jsonb',
  /** the worker running a step on this row (read-only here: the enforcer sets it) */
  owner: 'text?',
} as const satisfies ContextSpec;
export type VolumeContext = ContextOf<typeof volumeContext>;

export const volumeEvents = {
  DELETE: { by: 'api', verb: 'delete', params: {}, doc: 'delete the volume (DELETE /volumes/{id})' },
  FORCE_DELETE: { by: 'api', verb: 'force-delete', params: {}, doc: 'admin: delete whatever the status (os-force_delete)' },
  EXTEND: { by: 'api', verb: 'extend', params: { new_size: 'int' }, doc: 'grow the volume (os-extend)' },
  RESET_STATUS: { by: 'api', verb: 'reset the status of', params: { status: 'text' }, doc: 'admin: set a resting status (os-reset_status)' },
  SNAPSHOT_BEGIN: {
    by: 'link', verb: 'take a snapshot of',
    params: {},
    doc: 'a snapshot of this volume is being taken: one more reader, one more dependent',
  },
  READ_END: { by: 'link', params: {}, doc: 'an operation that read this volume ended' },
  SNAPSHOT_GONE: { by: 'link', params: {}, doc: 'a snapshot of this volume was deleted' },
  SCHEDULE: { by: 'worker', params: {}, doc: 'a scheduler took the new volume' },
  SCHEDULED: { by: 'worker', params: {}, doc: 'a backend was chosen' },
  SCHEDULE_FAILED: { by: 'worker', params: {}, doc: 'no backend can hold the volume' },
  BACKEND_CREATED: { by: 'worker', params: {}, doc: 'the backend created the volume' },
  BACKEND_FAILED: { by: 'worker', params: {}, doc: 'the backend failed the operation' },
  EXTENDED: { by: 'worker', params: {}, doc: 'the backend grew the volume' },
  DELETED: { by: 'worker', params: {}, doc: 'the backend deleted the volume' },
} as const satisfies EventSpecs;
export type VolumeEvent = EventOf<typeof volumeEvents>;
export type VolumeEventType = VolumeEvent['type'];

type C = VolumeContext;
type E = VolumeEvent;

export const volumeGuards = guardTable<C, E>()({
  ...readerGuards<C, E>('a snapshot or a clone of it'),
  noSnapshots: {
    unmet: 'it has snapshots',
    refusal: 'invalid',
    js: (c) => c.dependents === 0,
    sql: 'dependents = 0',
  },
  hasSnapshots: { unmet: 'it has no snapshots', refusal: 'invalid', js: (c) => c.dependents > 0, sql: 'dependents > 0' },
  grows: {
    unmet: 'the new size must be larger than the current size',
    refusal: 'invalid',
    js: (c, e) => 'new_size' in e && e.new_size > c.size,
    sql: ':new_size > size',
  },
  extendRecorded: {
    unmet: 'no extend is recorded',
    refusal: 'invalid',
    js: (c) => typeof c.operation?.['new_size'] === 'number',
    sql: "jsonb_typeof(operation -> 'new_size') = 'number'",
  },
  unowned: unownedGuard<C, E>(),
  ...resetGuards<C, E, typeof VOLUME_RESETTABLE>(VOLUME_RESETTABLE),
  canDelete: allOf('noReaders', 'noSnapshots'),
  canForceDelete: allOf('unowned', 'noReaders', 'noSnapshots'),
  canExtend: allOf('noReaders', 'grows'),
});

export const volumeEffects = effectTable<C, E>()({
  ...readerEffects<C, E>(),
  addDependent: { js: (c) => ({ dependents: c.dependents + 1 }), sql: { dependents: 'dependents + 1' } },
  removeDependent: { js: (c) => ({ dependents: c.dependents - 1 }), sql: { dependents: 'dependents - 1' } },
  recordExtend: {
    js: (_c, e) => ({ operation: { new_size: 'new_size' in e ? e.new_size : null } }),
    sql: { operation: "jsonb_build_object('new_size', :new_size)" },
  },
  finishExtend: {
    js: (c) => ({ size: c.operation?.['new_size'] as number, operation: null }),
    sql: { size: "(operation ->> 'new_size')::int", operation: 'NULL' },
  },
  clearOperation: { js: () => ({ operation: null }), sql: { operation: 'NULL' } },
});


/** os-reset_status: one guarded transition per resettable status. */
const resetStatus = resetTransitions('volume', VOLUME_RESETTABLE, 'clearOperation' as const);

const forceDelete = { guard: 'canForceDelete', target: '#volume.deleting', actions: 'clearOperation' } as const;

export const volumeMachine = setup({
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof volumeGuards>(volumeGuards),
  actions: jsEffects<C, E, typeof volumeEffects>(volumeEffects),
}).createMachine({
  id: 'volume',
  initial: 'creating',
  context: { readers: 0, dependents: 0, size: 1, operation: null, owner: null },
  // Reader bookkeeping is accepted in every state but the final one: a
  // reader may finish while an admin has reset the volume's status.
  on: {
    READ_END: { guard: 'hasReaders', actions: 'releaseReader' },
    SNAPSHOT_GONE: { guard: 'hasSnapshots', actions: 'removeDependent' },
  },
  states: {
    creating: {
      tags: [TRANSIENT],
      initial: 'db',
      on: { RESET_STATUS: resetStatus, FORCE_DELETE: forceDelete },
      states: {
        db: {
          meta: { step: 'schedule', doc: 'recorded; waiting for a scheduler' },
          on: { SCHEDULE: 'scheduling' },
        },
        scheduling: {
          meta: { step: 'schedule', doc: 'a scheduler is choosing a backend' },
          on: { SCHEDULED: 'backend', SCHEDULE_FAILED: '#volume.error' },
        },
        backend: {
          meta: { step: 'create', doc: 'the backend is creating the volume' },
          on: { BACKEND_CREATED: '#volume.available', BACKEND_FAILED: '#volume.error' },
        },
      },
    },
    available: {
      on: {
        DELETE: { guard: 'canDelete', target: 'deleting' },
        FORCE_DELETE: forceDelete,
        EXTEND: { guard: 'canExtend', target: 'extending', actions: 'recordExtend' },
        RESET_STATUS: resetStatus,
        SNAPSHOT_BEGIN: { actions: ['acquireReader', 'addDependent'] },
      },
    },
    extending: {
      tags: [TRANSIENT],
      meta: { step: 'extend', doc: 'the backend is growing the volume' },
      on: {
        EXTENDED: { guard: 'extendRecorded', target: 'available', actions: 'finishExtend' },
        BACKEND_FAILED: { target: 'error_extending', actions: 'clearOperation' },
        RESET_STATUS: resetStatus,
        FORCE_DELETE: forceDelete,
      },
    },
    deleting: {
      tags: [TRANSIENT],
      meta: { step: 'delete', doc: 'the backend is deleting the volume' },
      on: { DELETED: 'deleted', BACKEND_FAILED: 'error_deleting' },
    },
    error: {
      on: { DELETE: { guard: 'canDelete', target: 'deleting' }, FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus },
    },
    error_extending: {
      on: { DELETE: { guard: 'canDelete', target: 'deleting' }, FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus },
    },
    error_deleting: {
      on: { FORCE_DELETE: forceDelete, RESET_STATUS: resetStatus },
    },
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
  releases: { reader: 'READ_END', dependent: 'SNAPSHOT_GONE' },
});
