/**
 * Every worker step a machine names in a state's meta has an
 * implementation, and every implementation is named by some state: the
 * queue never holds work no worker can do.
 */
import { describe, expect, it } from 'vitest';
import { MODELS, type ResourceModel } from '../../machines/index.ts';
import { STEPS, stepFor } from '../../src/worker/steps.ts';

describe('worker steps', () => {
  for (const model of Object.values(MODELS) as ResourceModel[]) {
    it(`${model.type}: every step state has a step, and every step is used`, () => {
      const named = new Set<string>();
      for (const state of model.index.stepStates) {
        expect(stepFor(model.type, state), `${model.type} ${state}`).toBeTypeOf('function');
        named.add(model.index.meta(state).step!);
      }
      expect([...named].sort()).toEqual(Object.keys(STEPS[model.type as keyof typeof STEPS]).sort());
    });
  }
});
