/**
 * Every state of every machine is reachable from its initial state through
 * the machine's own events (explored by @xstate/graph, not by us), and the
 * final state is reachable from every state through FORCE_DELETE /
 * RESET_STATUS and the worker events: nothing can get stuck for good.
 */
import { getShortestPaths } from '@xstate/graph';
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
    if ('force' in spec.params) return [{ type, force: true }, { type, force: false }];
    if ('snapshot_id' in spec.params) return [{ type, snapshot_id: '00000000-0000-4000-8000-000000000001' }];
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
    const paths = getShortestPaths(model.machine, {
      events: sampleEvents(model) as never,
      stopWhen: bounded,
    });
    const reached = new Set(paths.map((p) => leafOf(p.state.value)));

    it('reaches every state from the initial one', () => {
      expect([...reached].sort()).toEqual([...model.states].sort());
    });

    it('can reach the final state from every state', () => {
      const final = model.states.find((s) => model.index.isFinal(s))!;
      for (const state of model.states) {
        const from = getShortestPaths(model.machine, {
          events: sampleEvents(model) as never,
          fromState: model.machine.resolveState({ value: model.index.stateValue(state), context: model.machine.config.context as never }),
          stopWhen: bounded,
        });
        expect(from.map((p) => leafOf(p.state.value)), `from ${state}`).toContain(final);
      }
    });
  });
}
