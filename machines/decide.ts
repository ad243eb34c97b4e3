/**
 * `decide(model, stored, event)`: what the machine says about one event on
 * one stored row. Pure.
 *
 * XState's `transition()` returns the same snapshot, silently, for an event
 * the state does not handle, and also when every guard fails; it cannot
 * tell "not allowed here" from "guard said no", nor say which guard. So
 * legality is decided here from the machine's structure (the candidates of
 * the state and event, their guards evaluated one by one), and XState
 * computes the next state and context of a legal transition. The two are
 * cross-checked on every call: a disagreement is a bug and throws.
 */
import { transition } from 'xstate';
import { guardAtoms, type AnyEvent } from './model.ts';
import { apiEvents, sqlParams, type ResourceModel } from './resource.ts';

export interface Stored<C = Record<string, unknown>> {
  readonly state: string;
  readonly context: C;
}

export interface FailedGuard {
  readonly guard: string;
  readonly unmet: string;
  readonly refusal: 'busy' | 'invalid';
}

export interface Allowed<C = Record<string, unknown>> {
  readonly ok: true;
  readonly from: string;
  readonly to: string;
  readonly context: C;
  /** the guard of the transition taken, if any */
  readonly guard: string | undefined;
}

/**
 * - `busy`: an operation is in flight (the state is transient, or only
 *   guards about in-flight work failed); retrying later may succeed.
 * - `invalid`: the event is not allowed from this resting state, or a guard
 *   on resting data failed; retrying will not help.
 * - `gone`: the resource reached its final state.
 */
export type RefusalKind = 'busy' | 'invalid' | 'gone';

export interface Refused {
  readonly ok: false;
  readonly kind: RefusalKind;
  readonly state: string;
  readonly event: string;
  /** guards that failed; empty when the state does not handle the event at all */
  readonly failed: readonly FailedGuard[];
}

export type Decision<C = Record<string, unknown>> = Allowed<C> | Refused;

export function decide<C extends Record<string, unknown>>(model: ResourceModel, stored: Stored<C>, event: AnyEvent): Decision<C> {
  const { index } = model;
  const refuse = (kind: RefusalKind, failed: FailedGuard[] = []): Refused => ({
    ok: false,
    kind,
    state: stored.state,
    event: event.type,
    failed,
  });
  if (index.isFinal(stored.state)) return refuse('gone');
  const candidates = index.candidates(stored.state, event.type);
  if (candidates.length === 0) return refuse(index.isTransient(stored.state) ? 'busy' : 'invalid');

  const failed: FailedGuard[] = [];
  /** per candidate, the names of its guards that failed */
  const failingOf: Set<string>[] = [];
  let onlyBusyFailed = false;
  for (const c of candidates) {
    const atoms = c.guard ? guardAtoms(model.guards, c.guard) : [];
    const failing = atoms.filter((a) => !a.guard.js(stored.context, event));
    if (failing.length === 0) return take(model, stored, event, c.target ?? stored.state, c.guard);
    failingOf.push(new Set(failing.map((a) => a.name)));
    for (const a of failing) {
      if (!failed.some((f) => f.guard === a.name)) {
        failed.push({ guard: a.name, unmet: a.guard.unmet, refusal: a.guard.refusal });
      }
    }
    if (failing.every((a) => a.guard.refusal === 'busy')) onlyBusyFailed = true;
  }
  // The reason that decided: a guard that failed on every path the event had (a second
  // attachment on a volume that is not multiattach fails "not multiattach" on each of the
  // five targets the counts choose between, and each target's own count besides). Only when
  // no guard is common to all paths does the refusal give every reason.
  const decisive = failed.filter((f) => failingOf.every((names) => names.has(f.guard)));
  return refuse(onlyBusyFailed ? 'busy' : 'invalid', decisive.length > 0 ? decisive : failed);
}

function take<C>(
  model: ResourceModel,
  stored: Stored<C>,
  event: { type: string },
  expected: string,
  guard: string | undefined,
): Allowed<C> {
  const { machine, index } = model;
  const snapshot = machine.resolveState({ value: index.stateValue(stored.state), context: stored.context });
  const [next] = transition(machine, snapshot, event);
  const to = leafOf(next.value);
  if (to !== expected) {
    throw new Error(`${model.type}: XState went ${stored.state} → ${to} on ${event.type}; the derived table says ${expected}`);
  }
  return { ok: true, from: stored.state, to, context: next.context as C, guard };
}

function leafOf(value: unknown): string {
  if (typeof value === 'string') return value;
  const [key, child] = Object.entries(value as Record<string, unknown>)[0]!;
  return `${key}.${leafOf(child)}`;
}

/**
 * Client events the machine would accept now from this row. Guards that
 * depend on the event's own parameters (a new size, a requested status)
 * are not judged: the event is listed when its other guards hold.
 */
export function allowedNow(model: ResourceModel, stored: Stored): string[] {
  const { index } = model;
  if (index.isFinal(stored.state)) return [];
  return apiEvents(model).filter((event) => {
    const params = Object.keys(model.events[event]!.params);
    return index.candidates(stored.state, event).some((c) => {
      if (!c.guard) return true;
      return guardAtoms(model.guards, c.guard)
        .filter((a) => !sqlParams(a.guard.sql).some((p) => params.includes(p)))
        .every((a) => a.guard.js(stored.context, { type: event }));
    });
  });
}
