/**
 * Every state of every machine is reachable from its initial state through
 * the machine's own events (explored by @xstate/graph, not by us), and the
 * final state is reachable from every state through FORCE_DELETE /
 * RESET_STATUS and the worker events: nothing can get stuck for good.
 */
import { getAdjacencyMap } from '@xstate/graph';
import { describe, expect, it } from 'vitest';
import type { AnyMachineSnapshot } from 'xstate';
import { attachmentDeltas } from '../../machines/attachment.ts';
import { MODELS, type ResourceModel } from '../../machines/index.ts';

/** Every attachment transition, as the deltas its volume receives. */
const attachmentChanges = [
  attachmentDeltas(null, MODELS.attachment.index.initial),
  ...MODELS.attachment.index.leaves.flatMap((from) =>
    Object.keys(MODELS.attachment.events).flatMap((event) =>
      MODELS.attachment.index.candidates(from, event).map((c) => attachmentDeltas(from, c.target ?? from)),
    ),
  ),
];

/** Samples of every event: each resettable status for RESET_STATUS, each attachment change, force on and off. */
function sampleEvents(model: ResourceModel): { type: string; [k: string]: unknown }[] {
  return Object.entries(model.events).flatMap(([type, spec]) => {
    if ('new_size' in spec.params) return [{ type, new_size: 5 }];
    if ('status' in spec.params) return model.resettable.map((status) => ({ type, status }));
    if ('d_reserved' in spec.params) return attachmentChanges.map((d) => ({ type, ...d }));
    if ('force' in spec.params)
      return [
        { type, force: true },
        { type, force: false },
      ];
    if ('snapshot_id' in spec.params) return [{ type, snapshot_id: '00000000-0000-4000-8000-000000000001' }];
    if ('backup_size' in spec.params) return [{ type, backup_id: '00000000-0000-4000-8000-000000000005', backup_size: 1 }];
    return [{ type }];
  });
}

/** Keep the explored space finite: counters above 2 add no new behaviour. */
const bounded = (s: AnyMachineSnapshot) =>
  Object.entries(s.context as Record<string, unknown>).some(([k, v]) => k !== 'size' && typeof v === 'number' && v > 2);

const leafOf = (value: unknown): string =>
  typeof value === 'string'
    ? value
    : Object.entries(value as Record<string, unknown>)
        .map(([k, v]) => `${k}.${leafOf(v)}`)
        .join('');

for (const model of Object.values(MODELS) as ResourceModel[]) {
  describe(`${model.type} machine`, () => {
    // Every (state, context) reachable from the initial one, with its moves: one exploration.
    const graph = getAdjacencyMap(model.machine, { events: sampleEvents(model) as never, stopWhen: bounded });
    const nodes = Object.entries(graph);

    it('reaches every state from the initial one', () => {
      const reached = new Set(nodes.map(([, n]) => leafOf(n.state.value)));
      expect([...reached].sort()).toEqual([...model.states].sort());
    });

    it('can reach the final state from every reachable state and context', () => {
      // Backwards from the final nodes: whatever has a move into a node that reaches the end reaches it too.
      const reaches = new Set(nodes.filter(([, n]) => model.index.isFinal(leafOf(n.state.value))).map(([key]) => key));
      const moves = nodes.map(([key, n]) => ({
        key,
        next: Object.values(n.transitions).map((t) => JSON.stringify((t as { state: unknown }).state)),
      }));
      const keyOf = new Map(nodes.map(([key, n]) => [JSON.stringify(n.state), key]));
      for (let grew = true; grew;) {
        grew = false;
        for (const { key, next } of moves) {
          if (!reaches.has(key) && next.some((s) => reaches.has(keyOf.get(s) ?? ''))) {
            reaches.add(key);
            grew = true;
          }
        }
      }
      // Nodes past the bound were not explored (no moves listed): nothing to say of them.
      const stuck = nodes.filter(([key, n]) => !reaches.has(key) && !bounded(n.state)).map(([, n]) => leafOf(n.state.value));
      expect([...new Set(stuck)], 'states from which the final state cannot be reached').toEqual([]);
    });
  });
}
