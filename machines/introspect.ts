/**
 * Reads a resource machine's structure: its leaf states and, for each
 * (leaf state, event), the ordered list of transitions XState would try.
 * Pure. This is the one place that knows how XState stores a machine; the
 * SQL compiler (`db/`), `decide()` and the diagrams all read through it.
 *
 * XState semantics reproduced here: a leaf state tries its own transitions
 * for an event first, in document order, then its parent's, up to the root;
 * the first whose guard holds is taken. A compound target enters its
 * initial child. A transition without a target keeps the state and only
 * runs its actions (effects).
 */
import type { LeaseKind } from './resource.ts';
import type { AnyStateMachine, AnyStateNode, StateValue } from 'xstate';
import { TRANSIENT, type StateMeta } from './model.ts';

export interface Candidate {
  /** path of the state node that declares the transition */
  readonly declaredOn: string;
  /** guard name from the guard table, if any */
  readonly guard: string | undefined;
  /** leaf state entered, or null when the transition keeps the state */
  readonly target: string | null;
  /** effect names, in order */
  readonly effects: readonly string[];
}

/** Path of a state node as stored in the database: `creating.db`. */
export function pathOf(node: AnyStateNode): string {
  return node.path.join('.');
}

function nameOf(ref: unknown, what: string, at: string): string {
  if (typeof ref === 'string') return ref;
  if (ref && typeof ref === 'object' && 'type' in ref && typeof ref.type === 'string') {
    if ('params' in ref && ref.params !== undefined) {
      throw new Error(`${at}: ${what} ${ref.type} has params; use a named ${what} per case instead`);
    }
    return ref.type;
  }
  throw new Error(`${at}: inline ${what}s cannot be compiled to SQL; name it in the ${what} table`);
}

/** The leaf a target enters: a compound state enters its initial child, recursively. */
export function enteredLeaf(node: AnyStateNode): AnyStateNode {
  if (node.type === 'atomic' || node.type === 'final') return node;
  if (node.type !== 'compound') throw new Error(`${pathOf(node)}: ${node.type} states are not supported`);
  const initial = node.initial.target[0];
  if (!initial) throw new Error(`${pathOf(node)}: compound state without an initial child`);
  return enteredLeaf(initial);
}

export class MachineIndex {
  readonly machine: AnyStateMachine;
  /** leaf states in document order */
  readonly leaves: readonly string[];
  readonly initial: string;
  readonly events: readonly string[];
  private readonly nodes = new Map<string, AnyStateNode>();
  private readonly cache = new Map<string, readonly Candidate[]>();

  constructor(machine: AnyStateMachine) {
    this.machine = machine;
    const leaves: string[] = [];
    const events = new Set<string>();
    const walk = (node: AnyStateNode) => {
      if (node.path.length > 0) this.nodes.set(pathOf(node), node);
      for (const event of node.transitions.keys()) events.add(event);
      if (node.always?.length || node.after.length || node.invoke.length) {
        throw new Error(`${pathOf(node)}: eventless, delayed and invoked transitions are not supported`);
      }
      const children = Object.values(node.states);
      if (children.length === 0) leaves.push(pathOf(node));
      children.forEach(walk);
    };
    walk(machine.root);
    this.leaves = leaves;
    this.events = [...events];
    this.initial = pathOf(enteredLeaf(machine.root));
  }

  node(path: string): AnyStateNode {
    const node = this.nodes.get(path);
    if (!node) throw new Error(`${this.machine.id}: no state ${path}`);
    return node;
  }

  isLeaf(path: string): boolean {
    return this.leaves.includes(path);
  }

  /** The ordered transitions XState would try for `event` in leaf `state`. */
  candidates(state: string, event: string): readonly Candidate[] {
    const key = `${state}\u0000${event}`;
    const hit = this.cache.get(key);
    if (hit) return hit;
    const out: Candidate[] = [];
    const leaf = this.node(state);
    if (leaf.type !== 'final') {
      for (let node: AnyStateNode | undefined = leaf; node; node = node.parent) {
        for (const t of node.transitions.get(event) ?? []) {
          const at = `${this.machine.id}:${pathOf(node) || '(root)'} on ${event}`;
          const targets = t.target ?? [];
          if (targets.length > 1) throw new Error(`${at}: parallel targets are not supported`);
          out.push({
            declaredOn: pathOf(node),
            guard: t.guard === undefined ? undefined : nameOf(t.guard, 'guard', at),
            target: targets[0] ? pathOf(enteredLeaf(targets[0])) : null,
            effects: (t.actions ?? []).map((a: unknown) => nameOf(a, 'effect', at)),
          });
        }
      }
    }
    this.cache.set(key, out);
    return out;
  }

  /** An operation is in flight: the state or one of its ancestors is tagged transient. */
  isTransient(state: string): boolean {
    for (let node: AnyStateNode | undefined = this.node(state); node; node = node.parent) {
      if (node.tags.includes(TRANSIENT)) return true;
    }
    return false;
  }

  isFinal(state: string): boolean {
    return this.node(state).type === 'final';
  }

  /** The client-visible status: the top-level state. */
  statusOf(state: string): string {
    return state.split('.')[0]!;
  }

  /** Leaf states a worker step moves on (those whose meta names a step). */
  get stepStates(): string[] {
    return this.leaves.filter((s) => this.meta(s).step !== undefined);
  }

  private readonly heldIn = new Map<string, readonly LeaseKind[]>();

  /** The lease kinds the resource holds on its sources while in this state (StateMeta.holds); read on every applied transition, so kept. */
  held(state: string): readonly LeaseKind[] {
    let kinds = this.heldIn.get(state);
    if (!kinds) this.heldIn.set(state, (kinds = this.meta(state).holds ?? []));
    return kinds;
  }

  meta(state: string): StateMeta {
    return (this.node(state).meta ?? {}) as StateMeta;
  }

  /** The XState state value for a stored path: `creating.db` → `{ creating: 'db' }`. */
  stateValue(state: string): StateValue {
    const parts = state.split('.');
    let value: StateValue = parts.pop()!;
    while (parts.length) value = { [parts.pop()!]: value };
    return value;
  }
}
