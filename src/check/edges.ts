/**
 * The machines' edges, read straight from the XState definitions for the
 * history checker. Deliberately its own reading: the checker must not
 * share code with the enforcer's path (machines/introspect.ts feeds the
 * CAS compiler, db/cas.ts), so that a bug there cannot hide itself here.
 *
 * XState's rules, as far as edges go: a leaf accepts the events of its own
 * `on` and of every ancestor's; a transition to a compound state enters its
 * initial leaf; a transition without a target keeps the state. Guards are
 * ignored: an edge is a move the machine can make for some context.
 */
import type { AnyStateMachine, AnyStateNode } from 'xstate';
import { modelOf, type ResourceType } from '../../machines/index.ts';
import { CREATE_EVENT, TRANSIENT } from '../../machines/model.ts';

const path = (node: AnyStateNode) => node.path.join('.');

function leafOf(node: AnyStateNode): AnyStateNode {
  while (node.type === 'compound') node = node.initial.target[0]!;
  return node;
}

function allNodes(machine: AnyStateMachine): AnyStateNode[] {
  const out: AnyStateNode[] = [];
  const walk = (n: AnyStateNode) => {
    out.push(n);
    for (const child of Object.values(n.states) as AnyStateNode[]) walk(child);
  };
  walk(machine.root);
  return out;
}

export interface MachineFacts {
  /** `from|event|to` for every edge */
  edges: Set<string>;
  /** the leaf a new resource starts in */
  initial: string;
  leaves: Set<string>;
  final: Set<string>;
  /** leaves where a worker step runs: a resource may not end a run in one */
  steps: Set<string>;
  /** leaves tagged transient (an operation in flight, by a worker or a client) */
  transient: Set<string>;
}

export function factsOf(type: ResourceType): MachineFacts {
  const machine = modelOf(type).machine;
  const facts: MachineFacts = {
    edges: new Set(),
    initial: path(leafOf(machine.root)),
    leaves: new Set(),
    final: new Set(),
    steps: new Set(),
    transient: new Set(),
  };
  for (const node of allNodes(machine)) {
    if (node === machine.root || (node.type !== 'atomic' && node.type !== 'final')) continue;
    const leaf = path(node);
    facts.leaves.add(leaf);
    if (node.type === 'final') facts.final.add(leaf);
    if ((node.meta as { step?: string } | undefined)?.step) facts.steps.add(leaf);
    for (let n: AnyStateNode | undefined = node; n; n = n.parent) if (n.tags.includes(TRANSIENT)) facts.transient.add(leaf);
    for (let n: AnyStateNode | undefined = node; n; n = n.parent) {
      for (const [event, transitions] of n.transitions) {
        for (const t of transitions) {
          const targets = t.target ?? [];
          if (targets.length === 0) facts.edges.add(`${leaf}|${event}|${leaf}`);
          for (const target of targets) facts.edges.add(`${leaf}|${event}|${path(leafOf(target))}`);
        }
      }
    }
  }
  facts.edges.add(`|${CREATE_EVENT}|${facts.initial}`);
  return facts;
}
