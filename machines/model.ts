/**
 * The vocabulary every resource machine is written in. Pure: no I/O, no
 * database, no HTTP. The SQL here is *text* (the SQL face of a guard or an
 * effect); `db/` compiles it into statements, nothing in `machines/` runs it.
 *
 * A resource machine is an XState v5 machine plus three tables that give the
 * database the same meaning the machine has in JavaScript:
 *
 * - `context`: the row columns the machine reads and writes (its context),
 *   with their SQL types. Context = row, column for column.
 * - `guards`: name → { js, sql, refusal }. XState evaluates `js`; the
 *   compare-and-swap evaluates `sql` in its WHERE clause. A property test
 *   checks the two faces agree on random rows. `refusal` says what failing
 *   the guard means for the client: `busy` (an operation is in flight; retry
 *   may work: 409) or `invalid` (the resting data forbids it: 400).
 * - `effects`: name → { js, sql }: context updates of a transition, as an
 *   XState `assign` and as `SET column = expr` terms.
 *
 * SQL faces refer to row columns by name and to event parameters as
 * `:param` (e.g. `size < :new_size`); `db/` turns those into typed `$n`
 * placeholders of one prepared statement per event.
 */

import type { LeaseKind } from './resource.ts';
import { assign, type EventObject, type MachineContext } from 'xstate';

/** SQL types a context column or an event parameter may have. */
/** `text?` is a nullable text column (the owner of a row). */
export type ColumnType = 'int' | 'bool' | 'text' | 'text?' | 'jsonb';

type JsOf<T extends ColumnType> = T extends 'int'
  ? number
  : T extends 'bool'
    ? boolean
    : T extends 'text'
      ? string
      : T extends 'text?'
        ? string | null
        : Record<string, unknown> | null;

/** Column name → SQL type; the machine context is exactly these columns. */
export type ContextSpec = Readonly<Record<string, ColumnType>>;
export type ContextOf<S extends ContextSpec> = { -readonly [K in keyof S]: JsOf<S[K]> };

/**
 * Who sends an event:
 * - `api`: a client action (what a refusal lists as "allowed now");
 * - `link`: sent on behalf of a related resource (a snapshot holding its
 *   volume as a reader), always inside the related resource's transaction;
 * - `worker`: a step of an operation, sent by the worker that owns the row.
 */
export type EventSender = 'api' | 'link' | 'worker';

export interface EventSpec {
  readonly by: EventSender;
  /** How a refusal names the attempt: "cannot <verb> volume X". */
  readonly verb?: string;
  /**
   * What the client sent, as a person would name it (`os-extend`,
   * `delete`, `snapshot create`): how a refusal's "Allowed now" and the
   * attempt itself are told, rather than by the event's internal name.
   */
  readonly request?: string;
  readonly params: Readonly<Record<string, ColumnType>>;
  /**
   * Columns of the resource's data row (its `volumes` row, …) that the
   * event writes, each from one of its parameters (column → parameter), in
   * the same statement that moves the state and writes the history: what
   * the step decided (SCHEDULED: the backend chosen) lands with the move,
   * never without it, and costs no statement of its own.
   */
  readonly data?: Readonly<Record<string, string>>;
  /** One line for operators (diagrams, docs). */
  readonly doc: string;
}
export type EventSpecs = Readonly<Record<string, EventSpec>>;

/** Any machine's event, its parameters by name: what code that serves every machine alike passes on. */
export type AnyEvent = { readonly type: string } & Readonly<Record<string, unknown>>;

export type EventOf<S extends EventSpecs> = {
  [E in keyof S & string]: { type: E } & { -readonly [P in keyof S[E]['params']]: JsOf<S[E]['params'][P]> };
}[keyof S & string];

/** What failing a guard means for the caller. */
export type Refusal = 'busy' | 'invalid';

/** A guard checked by one predicate. */
export interface AtomGuard<C, E> {
  /** What is wrong when the guard fails, for refusal messages: "it has snapshots". */
  readonly unmet: string;
  readonly refusal: Refusal;
  js(context: C, event: E): boolean;
  /** SQL predicate over resource_states columns and `:params`. */
  readonly sql: string;
}

/**
 * A guard that holds when all the named guards of the same table hold. Kept
 * as names (not an XState `and()`) so that a refusal can say which part
 * failed and whether that part makes the refusal busy or invalid.
 */
export interface AllOfGuard {
  readonly allOf: readonly string[];
}

export type GuardDef<C, E> = AtomGuard<C, E> | AllOfGuard;

export function allOf(...names: string[]): AllOfGuard {
  return { allOf: names };
}

export function isAllOf<C, E>(g: GuardDef<C, E>): g is AllOfGuard {
  return 'allOf' in g;
}

/** The atom guards a (possibly composite) guard stands for, in order. */
export function guardAtoms<C, E>(table: GuardTable<C, E>, name: string): { name: string; guard: AtomGuard<C, E> }[] {
  const g = table[name];
  if (!g) throw new Error(`unknown guard ${name}`);
  if (isAllOf(g)) return g.allOf.flatMap((part) => guardAtoms(table, part));
  return [{ name, guard: g }];
}

type EffectSql<C> = Readonly<Partial<Record<keyof C & string, string>>>;

export interface EffectDef<C, E> {
  js(context: C, event: E): Partial<C>;
  /** column → SQL expression evaluated against the *old* row (PostgreSQL SET semantics). */
  readonly sql: Readonly<Partial<Record<keyof C & string, string>>>;
}

export type GuardTable<C, E> = Readonly<Record<string, GuardDef<C, E>>>;
export type EffectTable<C, E> = Readonly<Record<string, EffectDef<C, E>>>;

/**
 * Declared per transient state in `meta`: what the step is and what happens
 * when the worker that owns it dies (see docs/active-active.md).
 */
export interface StateMeta {
  /** The worker step that moves this state on; absent for states a client moves on. */
  readonly step?: string;
  /**
   * The leases the resource holds on its sources while in this state: a
   * `reader` while it reads them (a snapshot being taken reads its volume),
   * a `backup` while a backup of them is made. The enforcer gives them
   * back, in the same transaction, on any transition out of the states that
   * hold them, whatever the event (worker, admin, recovery).
   */
  readonly holds?: readonly LeaseKind[];
  /**
   * A guard (no parameters) that must hold before the step may start: the
   * row is pending work only then (a cascade-deleted volume waits for its
   * snapshots to be gone). Part of the queue predicate, so nobody polls.
   */
  readonly ready?: string;
  /**
   * The step streams a volume's worth of data (a backup, a restore): it
   * runs in the worker's backup lane, a concurrency limit of its own
   * (VOLSTATE_BACKUP_CONCURRENCY per worker), so such steps never take
   * every slot from the volume operations. A guard name (no parameters):
   * only rows for which it holds (a volume being created from a backup).
   */
  readonly backupLane?: true | string;
  /**
   * For a transient state with no step: what moves it on (there is no
   * owner to lose; see diagrams/recovery.md).
   */
  readonly movedOnBy?: string;
  /** One line for operators. */
  readonly doc?: string;
}

/** Tag carried by every state in which an operation is in flight. */
export const TRANSIENT = 'transient' as const;

/** The pseudo-event recorded in history when a resource row is created. */
export const CREATE_EVENT = 'CREATE' as const;

/** Identity helper that keeps literal types of a guard table. */
export function guardTable<C, E>() {
  return <T extends GuardTable<C, E>>(table: T): T => table;
}

/** Identity helper that keeps literal types of an effect table. */
export function effectTable<C, E>() {
  return <T extends EffectTable<C, E>>(table: T): T => table;
}

/**
 * XState guard implementations built from a table, for `setup({ guards })`.
 * A composite guard holds when all its atoms hold.
 */
export function jsGuards<C, E, T extends GuardTable<C, E>>(table: T) {
  const out = {} as { [K in keyof T]: (args: { context: C; event: E }) => boolean };
  for (const name of Object.keys(table) as (keyof T & string)[]) {
    const atoms = guardAtoms(table, name);
    out[name] = ({ context, event }) => atoms.every((a) => a.guard.js(context, event));
  }
  return out;
}

/**
 * XState action implementations built from an effect table, for
 * `setup({ actions })`: each effect becomes an `assign` of its JS face.
 */
export function jsEffects<C extends MachineContext, E extends EventObject, T extends EffectTable<C, E>>(table: T) {
  const out = {} as { [K in keyof T]: ReturnType<typeof assign<C, E, undefined, E, never>> };
  for (const name of Object.keys(table) as (keyof T & string)[]) {
    const effect = table[name]!;
    out[name] = assign<C, E, undefined, E, never>(({ context, event }) => effect.js(context, event));
  }
  return out;
}

type ResetGuards<C, E, S extends readonly string[]> = { [K in S[number] as `requested:${K}`]: AtomGuard<C, E> } & {
  [K in S[number] as `reset:${K}`]: AllOfGuard;
};

/**
 * Guards for os-reset_status. Per status an admin may set:
 * `requested:<status>` holds when the event's `status` parameter names it
 * (the status names come from the machine itself, so inlining them is
 * safe), and `reset:<status>` adds `unowned`: no live worker is in the
 * middle of a step on the row, so an admin never yanks a row from under a
 * running backend call (a dead owner is recovered first, then reset works).
 */
export function resetGuards<C, E extends { type: string }, const S extends readonly string[]>(
  statuses: S,
  /** extra guard a status needs, e.g. `in-use` needs an attached attachment */
  also: Partial<Record<S[number], string>> = {},
): ResetGuards<C, E, S> {
  const out: Record<string, GuardDef<C, E>> = {};
  for (const status of statuses) {
    out[`requested:${status}`] = {
      unmet: `the requested status must be one of ${statuses.join(', ')}`,
      refusal: 'invalid',
      js: (_c, e) => 'status' in e && e.status === status,
      sql: `:status = '${status}'`,
    };
    const extra = (also as Record<string, string | undefined>)[status];
    out[`reset:${status}`] = allOf('unowned', `requested:${status}`, ...(extra ? [extra] : []));
  }
  // Built by name in the loop above: exactly the keys the mapped type lists.
  return out as ResetGuards<C, E, S>;
}

/** No worker owns the row: no backend step is running on it. */
export function unownedGuard<C extends { owner: string | null }, E>(): AtomGuard<C, E> {
  return {
    unmet: 'a worker is in the middle of a step on it',
    refusal: 'busy',
    js: (c) => c.owner === null,
    sql: 'owner IS NULL',
  };
}

/**
 * Reader bookkeeping shared by every resource that can be read by an
 * operation in flight: `noReaders` (busy when it fails: the reads end by
 * themselves) and `hasReaders` (a READ_END needs a reader to end).
 * `readBy` says who reads this kind of resource, for the refusal message.
 */
export function readerGuards<C extends { readers: number }, E>(readBy: string) {
  return {
    noReaders: { unmet: `${readBy} is in progress`, refusal: 'busy', js: (c: C) => c.readers === 0, sql: 'readers = 0' },
    hasReaders: { unmet: 'no operation is reading it', refusal: 'invalid', js: (c: C) => c.readers > 0, sql: 'readers > 0' },
  } satisfies GuardTable<C, E>;
}

export function readerEffects<C extends { readers: number }, E>() {
  return {
    acquireReader: { js: (c: C) => ({ readers: c.readers + 1 }) as Partial<C>, sql: { readers: 'readers + 1' } as EffectSql<C> },
    releaseReader: { js: (c: C) => ({ readers: c.readers - 1 }) as Partial<C>, sql: { readers: 'readers - 1' } as EffectSql<C> },
  } satisfies EffectTable<C, E>;
}

/**
 * The `backup` lease a volume or snapshot grants (machines/backup.ts): a
 * backup of it being made blocks its deletion (busy: it ends by itself),
 * and BACKUP_END needs one to end.
 */
export function backupLeaseGuards<C extends { backups: number }, E>() {
  return {
    noBackups: { unmet: 'a backup of it is being made', refusal: 'busy', js: (c: C) => c.backups === 0, sql: 'backups = 0' },
    hasBackups: { unmet: 'no backup of it is being made', refusal: 'invalid', js: (c: C) => c.backups > 0, sql: 'backups > 0' },
  } satisfies GuardTable<C, E>;
}

export function backupLeaseEffects<C extends { backups: number }, E>() {
  return {
    addBackup: { js: (c: C) => ({ backups: c.backups + 1 }) as Partial<C>, sql: { backups: 'backups + 1' } as EffectSql<C> },
    removeBackup: { js: (c: C) => ({ backups: c.backups - 1 }) as Partial<C>, sql: { backups: 'backups - 1' } as EffectSql<C> },
  } satisfies EffectTable<C, E>;
}

/** The `dependent` lease: a live snapshot of a volume, an incremental backup of its parent. */
export function dependentEffects<C extends { dependents: number }, E>() {
  return {
    addDependent: { js: (c: C) => ({ dependents: c.dependents + 1 }) as Partial<C>, sql: { dependents: 'dependents + 1' } as EffectSql<C> },
    removeDependent: {
      js: (c: C) => ({ dependents: c.dependents - 1 }) as Partial<C>,
      sql: { dependents: 'dependents - 1' } as EffectSql<C>,
    },
  } satisfies EffectTable<C, E>;
}

/**
 * The `member` lease: a volume in its group, a snapshot in its group
 * snapshot. `noMembers` says what is left (and how a refusal reads:
 * `refusal`), `hasMembers` is what MEMBER_GONE needs.
 */
export function memberGuards<C extends { members: number }, E>(what: string, refusal: 'busy' | 'invalid') {
  return {
    noMembers: { unmet: `it has ${what}`, refusal, js: (c: C) => c.members === 0, sql: 'members = 0' },
    hasMembers: { unmet: `it has no ${what}`, refusal: 'invalid', js: (c: C) => c.members > 0, sql: 'members > 0' },
  } satisfies GuardTable<C, E>;
}

export function memberEffects<C extends { members: number }, E>() {
  return {
    addMember: { js: (c: C) => ({ members: c.members + 1 }) as Partial<C>, sql: { members: 'members + 1' } as EffectSql<C> },
    removeMember: { js: (c: C) => ({ members: c.members - 1 }) as Partial<C>, sql: { members: 'members - 1' } as EffectSql<C> },
  } satisfies EffectTable<C, E>;
}

/** The sub-state an admin's os-reset_status parks a row in when it names a status of work (see resetTransitions). */
export const PARKED = 'parked';

/**
 * A parked sub-state: what os-reset_status enters when it names a status in
 * which volstate would otherwise do work (`creating`, `deleting`, …). Cinder
 * lets an admin set any status of its list; volstate accepts them without
 * ever starting backend work for a reset: a parked state has no step (no
 * worker claims it, no recovery touches it, it holds no reader), and only
 * another reset or a force delete leaves it.
 */
export const parkedState = {
  meta: { doc: 'set by an admin (os-reset_status): no worker takes it; another reset or a force delete leaves it' },
} as const;

/**
 * os-reset_status as transitions: one per resettable status, guarded by
 * `reset:<status>`. A status in `parked` enters `<status>.parked`.
 */
export function resetTransitions<const S extends readonly string[], A extends string | undefined = undefined>(
  machineId: string,
  statuses: S,
  actions?: A,
  parked: readonly S[number][] = [],
) {
  return statuses.map((status) => ({
    guard: `reset:${status}` as `reset:${S[number]}`,
    target: parked.includes(status) ? `#${machineId}.${status}.${PARKED}` : `#${machineId}.${status}`,
    ...(actions ? { actions } : {}),
  })) as { guard: `reset:${S[number]}`; target: string; actions?: A }[];
}

/** The client-visible status of a state path: its top-level state (`creating.db` → `creating`). */
export type StatusOf<S extends string> = S extends `${infer Top}.${string}` ? Top : S;

/** The statuses of a state tuple, in order, without repeats. */
export function statusesOf<const S extends readonly string[]>(states: S): readonly StatusOf<S[number]>[] {
  return [...new Set(states.map((s) => s.split('.')[0]!))] as StatusOf<S[number]>[];
}

/**
 * Crash recovery. When the worker that owns a row in a step state dies
 * (its heartbeat is older than the timeout), any live worker sends the row
 * WORKER_LOST, as a CAS on `owner = <the dead worker>` so two cleaners
 * cannot both apply it. Every step is idempotent (a create of an existing
 * volume of that size, a delete of a missing one, an extend to the size it
 * already has all succeed), so the step is resumed: the row goes back to
 * the queue, and another worker redoes it. A step that keeps killing its
 * workers is not retried forever: after MAX_STEP_ATTEMPTS losses the row
 * goes to the matching error state, where an admin can look at it.
 * The losses are counted in the row's `operation` (cleared when the
 * operation ends).
 */
export const MAX_STEP_ATTEMPTS = 3;

const lostSql = "COALESCE((operation ->> 'lost')::int, 0)";
const lostOf = (c: { operation: Record<string, unknown> | null }) => Number(c.operation?.['lost'] ?? 0);

export function recoveryGuards<C extends { operation: Record<string, unknown> | null }, E>() {
  return {
    canRetry: {
      unmet: `the step was lost ${MAX_STEP_ATTEMPTS} times`,
      refusal: 'invalid',
      js: (c: C) => lostOf(c) + 1 < MAX_STEP_ATTEMPTS,
      sql: `${lostSql} + 1 < ${MAX_STEP_ATTEMPTS}`,
    },
  } satisfies GuardTable<C, E>;
}

export function recoveryEffects<C extends { operation: Record<string, unknown> | null }, E>() {
  return {
    countLoss: {
      js: (c: C) => {
        const operation: Record<string, unknown> = { ...(c.operation ?? {}), lost: lostOf(c) + 1 };
        return { operation } as Partial<C>;
      },
      sql: { operation: `jsonb_set(COALESCE(operation, '{}'::jsonb), '{lost}', to_jsonb(${lostSql} + 1))` } as EffectSql<C>,
    },
    clearOperation: { js: () => ({ operation: null }) as Partial<C>, sql: { operation: 'NULL' } as EffectSql<C> },
  } satisfies EffectTable<C, E>;
}

/** WORKER_LOST from a step state: back to `resume` while attempts remain, else to `fail`. */
export function workerLost(machineId: string, resume: string, fail: string) {
  return [
    { guard: 'canRetry' as const, target: `#${machineId}.${resume}`, actions: 'countLoss' as const },
    { target: `#${machineId}.${fail}`, actions: 'clearOperation' as const },
  ];
}
