/**
 * The group machine (Cinder's generic volume groups; consistency groups are
 * groups too). Pure: no I/O, no database, no HTTP.
 *
 * Membership is a lease: a volume in a group holds a `member` lease on it
 * (the group's `members`), taken by MEMBER_ADD in the transaction that puts
 * the volume in (a create into the group, or an update's add_volumes) and
 * given back by MEMBER_GONE when the volume leaves (remove_volumes) or is
 * deleted. A group snapshot holds a `dependent` lease on its group for as
 * long as it exists (`dependents`), so a group with snapshots cannot be
 * deleted — a guard in the CAS, where Cinder reads, then writes.
 *
 * What Cinder does in two or three transactions is one here: an update
 * that adds and removes volumes is the group's UPDATE and every member's
 * CAS in one transaction (src/services/groups.ts), so the group never shows
 * `updating` to a client; a delete with its volumes is the group's CAS and
 * every member's DELETE, or nothing.
 */
import { setup } from 'xstate';
import {
  allOf,
  dependentEffects,
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

export const GROUP_STATES = [
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
export type GroupState = (typeof GROUP_STATES)[number];
export const GROUP_STATUSES = statusesOf(GROUP_STATES);

/**
 * Cinder's group reset_status takes the group snapshot statuses
 * (validators.py _validate_group_status), `deleted` aside: volstate ends a
 * group only by deleting it. `creating`, `deleting` and `updating` park.
 */
export const GROUP_RESETTABLE = ['available', 'error', 'error_deleting', 'creating', 'deleting', 'updating'] as const;
const GROUP_PARKED = ['creating', 'deleting', 'updating'] as const;

export const groupContext = {
  /** volumes in the group (the `member` leases they hold) */
  members: 'int',
  /** live group snapshots of the group */
  dependents: 'int',
  /** the step's lost attempts while one is in flight (see model.ts, recovery) */
  operation: 'jsonb',
  /** the worker running a step on this row (read-only here: the enforcer sets it) */
  owner: 'text?',
} as const satisfies ContextSpec;
export type GroupContext = ContextOf<typeof groupContext>;

export const groupEvents = {
  DELETE: {
    by: 'api',
    verb: 'delete',
    request: 'delete',
    params: {},
    doc: 'delete the group, which has no volumes (POST /groups/{id}/action {"delete": {}})',
  },
  DELETE_WITH_VOLUMES: {
    by: 'api',
    verb: 'delete with its volumes',
    request: 'delete with delete-volumes',
    params: {},
    doc: 'delete the group and its volumes (delete-volumes: true): every member is deleted in the same transaction, or nothing is',
  },
  UPDATE: {
    by: 'api',
    verb: 'add volumes to or remove volumes from',
    request: 'update with add_volumes or remove_volumes',
    params: {},
    doc: "change the group's volumes (PUT /groups/{id}): the members' own CASes run in the same transaction",
  },
  RESET_STATUS: {
    by: 'api',
    verb: 'reset the status of',
    request: 'reset_status',
    params: { status: 'text' },
    doc: 'admin: set a status (POST /groups/{id}/action {"reset_status"})',
  },
  MEMBER_ADD: {
    by: 'link',
    verb: 'add a volume to',
    request: 'volume create with group_id, or update with add_volumes',
    params: {},
    doc: 'a volume joins the group: one more member',
  },
  MEMBER_GONE: { by: 'link', params: {}, doc: 'a member volume left the group or was deleted' },
  SNAPSHOT_BEGIN: {
    by: 'link',
    verb: 'snapshot',
    request: 'group snapshot create',
    params: {},
    doc: 'a group snapshot of this group is being taken: one more dependent',
  },
  SNAPSHOT_GONE: { by: 'link', params: {}, doc: 'a group snapshot of this group was deleted' },
  CREATED: { by: 'worker', params: {}, doc: 'the backend made the group' },
  BACKEND_FAILED: { by: 'worker', params: {}, doc: 'the backend failed the operation' },
  DELETED: { by: 'worker', params: {}, doc: 'the backend deleted the group (its volumes are gone)' },
  WORKER_LOST: { by: 'worker', params: {}, doc: 'the worker running the step died; sent by any live worker (see model.ts, recovery)' },
} as const satisfies EventSpecs;
export type GroupEvent = EventOf<typeof groupEvents>;

type C = GroupContext;
type E = GroupEvent;

export const groupGuards = guardTable<C, E>()({
  unowned: unownedGuard<C, E>(),
  ...recoveryGuards<C, E>(),
  ...resetGuards<C, E, typeof GROUP_RESETTABLE>(GROUP_RESETTABLE),
  ...memberGuards<C, E>('volumes (delete them with it: delete-volumes)', 'invalid'),
  noSnapshots: {
    unmet: 'it has group snapshots (delete them first)',
    refusal: 'invalid',
    js: (c) => c.dependents === 0,
    sql: 'dependents = 0',
  },
  hasSnapshots: { unmet: 'it has no group snapshots', refusal: 'invalid', js: (c) => c.dependents > 0, sql: 'dependents > 0' },
  canDelete: allOf('noMembers', 'noSnapshots'),
});

export const groupEffects = effectTable<C, E>()({
  ...recoveryEffects<C, E>(),
  ...dependentEffects<C, E>(),
  ...memberEffects<C, E>(),
});

const resetStatus = resetTransitions('group', GROUP_RESETTABLE, 'clearOperation' as const, GROUP_PARKED);
const deletes = {
  DELETE: { guard: 'canDelete', target: '#group.deleting' },
  DELETE_WITH_VOLUMES: { guard: 'noSnapshots', target: '#group.deleting' },
} as const;

export const groupMachine = setup({
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion -- xstate's type witness: without it each state's meta is checked against {}, not StateMeta
  types: { context: {} as C, events: {} as E, meta: {} as StateMeta },
  guards: jsGuards<C, E, typeof groupGuards>(groupGuards),
  actions: jsEffects<C, E, typeof groupEffects>(groupEffects),
}).createMachine({
  id: 'group',
  initial: 'creating',
  context: { members: 0, dependents: 0, operation: null, owner: null },
  // A member may be deleted, and a group snapshot of the group deleted, whatever the group's status.
  on: {
    MEMBER_GONE: { guard: 'hasMembers', actions: 'removeMember' },
    SNAPSHOT_GONE: { guard: 'hasSnapshots', actions: 'removeDependent' },
  },
  states: {
    creating: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: { step: 'create', doc: 'the backend is making the group (volumes may be created into it already, as in Cinder)' },
          on: {
            MEMBER_ADD: { actions: 'addMember' },
            CREATED: { target: '#group.available', actions: 'clearOperation' },
            BACKEND_FAILED: { target: '#group.error', actions: 'clearOperation' },
            WORKER_LOST: workerLost('group', 'creating.backend', 'error'),
          },
        },
        parked: { ...parkedState, on: deletes },
      },
    },
    available: {
      on: {
        ...deletes,
        UPDATE: {},
        MEMBER_ADD: { actions: 'addMember' },
        SNAPSHOT_BEGIN: { actions: 'addDependent' },
        RESET_STATUS: resetStatus,
      },
    },
    updating: { initial: 'parked', on: { RESET_STATUS: resetStatus, ...deletes }, states: { parked: parkedState } },
    deleting: {
      initial: 'backend',
      on: { RESET_STATUS: resetStatus },
      states: {
        backend: {
          tags: [TRANSIENT],
          meta: {
            step: 'delete',
            ready: 'noMembers',
            doc: 'its volumes are being deleted; when the last is gone, the backend deletes the group',
          },
          on: {
            // Never with a member left: its lease would point at a deleted group.
            DELETED: { guard: 'noMembers', target: '#group.deleted' },
            BACKEND_FAILED: { target: '#group.error_deleting', actions: 'clearOperation' },
            WORKER_LOST: workerLost('group', 'deleting.backend', 'error_deleting'),
          },
        },
        parked: { ...parkedState, on: deletes },
      },
    },
    error: { on: { ...deletes, RESET_STATUS: resetStatus } },
    error_deleting: { on: { ...deletes, RESET_STATUS: resetStatus } },
    deleted: { type: 'final' },
  },
});

export const groupModel = defineResource<C, E>({
  type: 'group',
  noun: 'group',
  machine: groupMachine,
  states: GROUP_STATES,
  statuses: GROUP_STATUSES,
  resettable: GROUP_RESETTABLE,
  context: groupContext,
  events: groupEvents,
  guards: groupGuards,
  effects: groupEffects,
  releases: { member: 'MEMBER_GONE', dependent: 'SNAPSHOT_GONE' },
});
