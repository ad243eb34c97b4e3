/**
 * The group snapshot machine. Pure: no I/O, no database, no HTTP.
 *
 * A group snapshot is one operation over every member of its group, never
 * a partial one (src/services/groups.ts):
 *
 * - Its create is one transaction: the group's SNAPSHOT_BEGIN (the group
 *   must be `available`), every member volume's SNAPSHOT_BEGIN (a member
 *   being extended, reverted or deleted refuses the whole request, naming
 *   it), and a member snapshot per volume, parked in `creating.group`
 *   (machines/snapshot.ts), each holding a `member` lease on the group
 *   snapshot and a reader on its volume. Cinder instead inserts the
 *   snapshots after reading each volume's status, one by one.
 * - Its step takes every member's copy, then moves every member snapshot
 *   and itself to `available` in one transaction (or all to `error`).
 *   From the create's transaction until then every member volume has a
 *   reader, so no step of volstate's writes to any of them (extend, revert,
 *   restore, delete are refused): the copies are of one point in time as
 *   far as volstate's own writes go.
 * - Its delete is its CAS and every member snapshot's DELETE in one
 *   transaction; it is gone when the last member is (`members = 0`).
 */
import { setup } from 'xstate';
import {
  effectTable,
  guardTable,
  jsEffects,
  jsGuards,
  memberEffects,
  memberGuards,
  parkedState,
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

export const GROUP_SNAPSHOT_STATES = [
  'creating.backend',
  'creating.parked',
  'available',
  'updating.parked',
  'deleting.backend',
  'deleting.parked',
  'error',
  'error_deleting',
  'deleted',
] as const;
export type GroupSnapshotState = (typeof GROUP_SNAPSHOT_STATES)[number];
export const GROUP_SNAPSHOT_STATUSES = statusesOf(GROUP_SNAPSHOT_STATES);

/** Cinder's GroupSnapshotStatus.ALL but `deleted`; `creating`, `deleting` and `updating` park. */
export const GROUP_SNAPSHOT_RESETTABLE = ['available', 'error', 'error_deleting', 'creating', 'deleting', 'updating'] as const;
const PARKED = ['creating', 'deleting', 'updating'] as const;

export const groupSnapshotContext = {
  /** its member snapshots (the `member` leases they hold) */
  members: 'int',
  /** the step's lost attempts while one is in flight (see model.ts, recovery) */
  operation: 'jsonb',
  /** the worker running a step on this row (read-only here: the enforcer sets it) */
  owner: 'text?',
} as const satisfies ContextSpec;
export type GroupSnapshotContext = ContextOf<typeof groupSnapshotContext>;

export const groupSnapshotEvents = {
  DELETE: {
    by: 'api',
    verb: 'delete',
    request: 'delete',
    params: {},
    doc: 'delete the group snapshot and its member snapshots, in one transaction (DELETE /group_snapshots/{id})',
  },
  RESET_STATUS: {
    by: 'api',
    verb: 'reset the status of',
    request: 'reset_status',
    params: { status: 'text' },
    doc: 'admin: set a status (POST /group_snapshots/{id}/action {"reset_status"})',
  },
  MEMBER_ADD: { by: 'link', params: {}, doc: "a member snapshot is made, in the group snapshot's own create" },
  MEMBER_GONE: { by: 'link', params: {}, doc: 'a member snapshot was deleted' },
  CREATED: { by: 'worker', params: {}, doc: "every member's copy is taken (the members become available in the same transaction)" },
  BACKEND_FAILED: { by: 'worker', params: {}, doc: 'the backend failed a copy (every member becomes error in the same transaction)' },
  DELETED: { by: 'worker', params: {}, doc: 'its last member snapshot is gone' },
  WORKER_LOST: { by: 'worker', params: {}, doc: 'the worker running the step died; sent by any live worker (see model.ts, recovery)' },
} as const satisfies EventSpecs;
export type GroupSnapshotEvent = EventOf<typeof groupSnapshotEvents>;

type C = GroupSnapshotContext;
type E = GroupSnapshotEvent;

export const groupSnapshotGuards = guardTable<C, E>()({
  unowned: unownedGuard<C, E>(),
  ...recoveryGuards<C, E>(),
  ...resetGuards<C, E, typeof GROUP_SNAPSHOT_RESETTABLE>(GROUP_SNAPSHOT_RESETTABLE),
  ...memberGuards<C, E>('member snapshots', 'busy'),
});

export const groupSnapshotEffects = effectTable<C, E>()({
  ...recoveryEffects<C, E>(),
  ...memberEffects<C, E>(),
});

const resetStatus = resetTransitions('group_snapshot', GROUP_SNAPSHOT_RESETTABLE, 'clearOperation' as const, PARKED);
const del = { DELETE: { guard: 'unowned', target: '#group_snapshot.deleting' } } as const;

export const groupSnapshotMachine = setup({
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- xstate's type witness: without it each state's meta is checked against {}, not StateMeta
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof groupSnapshotGuards>(groupSnapshotGuards),
  actions: jsEffects<C, E, typeof groupSnapshotEffects>(groupSnapshotEffects),
}).createMachine({
  id: 'group_snapshot',
  initial: 'creating',
  context: { members: 0, operation: null, owner: null },
  on: { MEMBER_GONE: { guard: 'hasMembers', actions: 'removeMember' } },
  states: {
    creating: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: {
            step: 'create',
            doc: "the backend is taking every member's copy (each member volume is held as a reader until all are taken)",
          },
          on: {
            // Only in its own create's transaction, before any worker can see it.
            MEMBER_ADD: { guard: 'unowned', actions: 'addMember' },
            CREATED: { target: '#group_snapshot.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#group_snapshot.error', actions: 'clearOperation' },
            // Taking a copy again overwrites the partial one: redo them all.
            WORKER_LOST: workerLost('group_snapshot', 'creating.backend', 'error'),
          },
        },
        parked: { ...parkedState, on: del },
      },
    },
    available: { on: { ...del, RESET_STATUS: resetStatus } },
    updating: { initial: 'parked', on: { ...del, RESET_STATUS: resetStatus }, states: { parked: parkedState } },
    deleting: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: { step: 'delete', ready: 'noMembers', doc: 'its member snapshots are being deleted; it is gone with the last' },
          on: {
            // Never with a member left: its lease would point at a deleted group snapshot.
            DELETED: { guard: 'noMembers', target: '#group_snapshot.deleted' },
            WORKER_LOST: workerLost('group_snapshot', 'deleting.backend', 'error_deleting'),
          },
        },
        parked: { ...parkedState, on: del },
      },
    },
    error: { on: { ...del, RESET_STATUS: resetStatus } },
    error_deleting: { on: { ...del, RESET_STATUS: resetStatus } },
    deleted: { type: 'final' },
  },
});

export const groupSnapshotModel = defineResource<C, E>({
  type: 'group_snapshot',
  noun: 'group snapshot',
  machine: groupSnapshotMachine,
  states: GROUP_SNAPSHOT_STATES,
  statuses: GROUP_SNAPSHOT_STATUSES,
  resettable: GROUP_SNAPSHOT_RESETTABLE,
  context: groupSnapshotContext,
  events: groupSnapshotEvents,
  guards: groupSnapshotGuards,
  effects: groupSnapshotEffects,
  releases: { member: 'MEMBER_GONE' },
  holdsForLife: ['dependent'],
});
