/**
 * A resource model: a machine together with the tables that give the
 * database its meaning. Pure. `defineResource` checks, when the module
 * loads, that the tables and the machine agree (every state listed is a
 * leaf of the machine and the other way round, every guard and effect a
 * transition names exists, every `:param` its SQL uses is a parameter of the
 * event), so a mismatch fails at import time, not in production.
 */
import type { AnyStateMachine } from 'xstate';
import { MachineIndex } from './introspect.ts';
import { guardAtoms, type ContextSpec, type EffectTable, type EventSpecs, type GuardTable } from './model.ts';

export interface ResourceModel<C = Record<string, unknown>, E = { type: string }> {
  /** `resource_states.resource_type` */
  readonly type: string;
  /** how error messages name it: "volume", "snapshot" */
  readonly noun: string;
  readonly machine: AnyStateMachine;
  readonly index: MachineIndex;
  readonly states: readonly string[];
  readonly statuses: readonly string[];
  /** statuses os-reset_status may set */
  readonly resettable: readonly string[];
  readonly context: ContextSpec;
  readonly events: EventSpecs;
  readonly guards: GuardTable<C, E>;
  readonly effects: EffectTable<C, E>;
  /**
   * The events that give back a lease of each kind this resource grants as
   * a source: `reader` (an operation reading it) and `dependent` (a live
   * snapshot of it). See `leases` in db/schema.ts.
   */
  readonly releases: Readonly<Partial<Record<LeaseKind, string>>>;
  /**
   * The leases every row holds as a holder from its create to its final
   * state, taken by the service that creates it: a snapshot its volume's
   * `dependent`, a group snapshot its group's. Only the move into the final
   * state gives them back (src/enforcer.ts: such a move is never tried
   * without its transaction). States' `holds` name the others, which come
   * and go with an operation.
   */
  readonly holdsForLife?: readonly LeaseKind[];
}

/**
 * What a holder holds on a source: a read in flight (`reader`), its
 * existence (`dependent`: a snapshot of a volume, an incremental backup of
 * its parent, a group snapshot of its group), a backup being made of it
 * (`backup`), or membership (`member`: a volume in its group, a snapshot in
 * its group snapshot).
 */
export type LeaseKind = 'reader' | 'dependent' | 'backup' | 'member';
export const LEASE_KINDS: readonly LeaseKind[] = ['reader', 'dependent', 'backup', 'member'];

/** `:name`, but not the second colon of a `::type` cast. */
const PARAM = /(?<!:):([a-z_][a-z0-9_]*)/g;

/** Names of the `:params` an SQL fragment refers to. */
export function sqlParams(fragment: string): string[] {
  return [...fragment.matchAll(PARAM)].map((m) => m[1]!);
}

export function defineResource<C, E>(model: Omit<ResourceModel<C, E>, 'index'>): ResourceModel<C, E> {
  const index = new MachineIndex(model.machine);
  const where = `machines/${model.type}`;
  const listed = [...model.states].sort().join(',');
  const actual = [...index.leaves].sort().join(',');
  if (listed !== actual) throw new Error(`${where}: state tuple [${listed}] differs from the machine's leaves [${actual}]`);
  const statuses = [...new Set(index.leaves.map((s) => index.statusOf(s)))].sort().join(',');
  if (statuses !== [...model.statuses].sort().join(',')) {
    throw new Error(`${where}: status tuple differs from the machine's top-level states [${statuses}]`);
  }
  // Crash recovery for every transient state: a step state says where
  // WORKER_LOST takes it; a state without a step says what moves it on.
  for (const state of index.leaves.filter((s) => index.isTransient(s))) {
    const meta = index.meta(state);
    if (meta.step && index.candidates(state, 'WORKER_LOST').length === 0) {
      throw new Error(`${where}: ${state} has step ${meta.step} but no WORKER_LOST transition (what happens when its worker dies?)`);
    }
    if (!meta.step && !meta.movedOnBy)
      throw new Error(`${where}: transient state ${state} has no step and no movedOnBy: what moves it on?`);
  }
  for (const state of index.leaves) {
    const ready = index.meta(state).ready;
    if (ready === undefined) continue;
    if (!index.meta(state).step) throw new Error(`${where}: ${state} has a ready guard but no step`);
    for (const a of guardAtoms(model.guards, ready)) {
      if (sqlParams(a.guard.sql).length) throw new Error(`${where}: ready guard ${a.name} of ${state} takes parameters`);
    }
  }
  for (const [kind, event] of Object.entries(model.releases)) {
    if (!model.events[event]) throw new Error(`${where}: ${kind} leases are released by ${event}, which is not an event`);
  }
  for (const s of model.resettable) {
    if (!model.statuses.includes(s)) throw new Error(`${where}: resettable status ${s} is not a status`);
  }
  for (const event of index.events) {
    const spec = model.events[event];
    if (!spec) throw new Error(`${where}: the machine handles ${event}, which the event table does not declare`);
    const params = Object.keys(spec.params);
    for (const [column, param] of Object.entries(spec.data ?? {})) {
      if (!params.includes(param)) throw new Error(`${where}: ${event} writes ${column} from ${param}, not a parameter of ${event}`);
      if (!/^[a-z_][a-z0-9_]*$/.test(column)) throw new Error(`${where}: ${event} writes ${column}, not a column name`);
    }
    const checkParams = (fragment: string, what: string) => {
      for (const p of sqlParams(fragment)) {
        if (!params.includes(p)) throw new Error(`${where}: ${what} uses :${p}, not a parameter of ${event}`);
      }
    };
    for (const state of index.leaves) {
      for (const c of index.candidates(state, event)) {
        if (c.guard) for (const a of guardAtoms(model.guards, c.guard)) checkParams(a.guard.sql, `guard ${a.name}`);
        const columns = new Set<string>();
        for (const name of c.effects) {
          const effect = model.effects[name];
          if (!effect) throw new Error(`${where}: ${event} names effect ${name}, which the effect table lacks`);
          for (const [column, expr] of Object.entries(effect.sql)) {
            if (!(column in model.context)) throw new Error(`${where}: effect ${name} sets unknown column ${column}`);
            if (columns.has(column)) throw new Error(`${where}: two effects of ${event} set ${column}`);
            columns.add(column);
            checkParams(expr as string, `effect ${name}`);
          }
        }
      }
    }
  }
  return { ...model, index };
}

/** Events a client may send (what a refusal lists as allowed). */
export function apiEvents(model: ResourceModel): string[] {
  return Object.entries(model.events)
    .filter(([, spec]) => spec.by === 'api')
    .map(([name]) => name);
}
