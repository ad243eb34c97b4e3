/**
 * decide(): what it returns beyond the target state (context changes,
 * which guard failed and what that makes the refusal), and that it never
 * mistakes XState's silent "same snapshot" for a transition.
 */
import { setup } from 'xstate';
import { transition } from 'xstate';
import { describe, expect, it } from 'vitest';
import { allowedNow, decide } from '../../machines/decide.ts';
import { MODELS } from '../../machines/index.ts';
import { MAX_STEP_ATTEMPTS } from '../../machines/model.ts';
import { defineResource } from '../../machines/resource.ts';
import { TRANSIENT } from '../../machines/model.ts';
import type { VolumeContext } from '../../machines/volume.ts';

const volume = MODELS.volume;
const snapshot = MODELS.snapshot;
const quiet: VolumeContext = { ...(MODELS.volume.machine.config.context as VolumeContext), size: 3 };

describe('decide on the volume machine', () => {
  it('applies the effects of a transition to the context', () => {
    const begin = decide(volume, { state: 'available', context: quiet }, { type: 'SNAPSHOT_BEGIN' });
    expect(begin).toMatchObject({ ok: true, to: 'available', context: { readers: 1, dependents: 1, size: 3 } });

    const extend = decide(volume, { state: 'available', context: quiet }, { type: 'EXTEND', new_size: 5 });
    expect(extend).toMatchObject({ ok: true, to: 'extending.backend', context: { size: 3, operation: { new_size: 5 } } });

    const extended = decide(
      volume,
      { state: 'extending.backend', context: { ...quiet, operation: { new_size: 5 } } },
      { type: 'EXTENDED' },
    );
    expect(extended).toMatchObject({ ok: true, to: 'available', context: { size: 5, operation: null } });
  });

  it('refuses an extend that does not grow the volume as invalid, naming the guard', () => {
    for (const new_size of [3, 2, 0, -1]) {
      const d = decide(volume, { state: 'available', context: quiet }, { type: 'EXTEND', new_size });
      expect(d).toMatchObject({ ok: false, kind: 'invalid', state: 'available' });
      expect(!d.ok && d.failed.map((f) => f.guard)).toEqual(['grows']);
    }
  });

  it('calls a delete blocked only by readers busy, and one blocked by snapshots invalid', () => {
    const readersOnly = decide(volume, { state: 'available', context: { ...quiet, readers: 2 } }, { type: 'DELETE' });
    expect(readersOnly).toMatchObject({ ok: false, kind: 'busy', failed: [{ guard: 'noReaders', refusal: 'busy' }] });

    const snapshotsOnly = decide(volume, { state: 'available', context: { ...quiet, dependents: 1 } }, { type: 'DELETE' });
    expect(snapshotsOnly).toMatchObject({ ok: false, kind: 'invalid', failed: [{ guard: 'noSnapshots' }] });
  });

  it('refuses FORCE_DELETE and RESET_STATUS while a worker owns the row, as busy', () => {
    const owned = { ...quiet, owner: 'worker:w1' };
    for (const event of [{ type: 'FORCE_DELETE' }, { type: 'RESET_STATUS', status: 'error' }]) {
      const d = decide(volume, { state: 'creating.backend', context: owned }, event);
      expect(d).toMatchObject({ ok: false, kind: 'busy' });
      expect(!d.ok && d.failed.map((f) => f.guard)).toContain('unowned');
    }
    // ...and accepts them once nobody owns it.
    expect(decide(volume, { state: 'creating.backend', context: quiet }, { type: 'FORCE_DELETE' })).toMatchObject({
      ok: true,
      to: 'deleting.backend',
    });
  });

  it('refuses a reset to a status that is not resettable as invalid', () => {
    for (const status of ['deleted', 'bogus']) {
      const d = decide(volume, { state: 'available', context: quiet }, { type: 'RESET_STATUS', status });
      expect(d).toMatchObject({ ok: false, kind: 'invalid' });
    }
  });

  it('parks a reset to a status of work in <status>.parked, which only a reset or a force delete leaves', () => {
    for (const status of ['creating', 'extending', 'reverting', 'deleting', 'maintenance', 'retyping']) {
      const d = decide(volume, { state: 'available', context: quiet }, { type: 'RESET_STATUS', status });
      expect(d).toMatchObject({ ok: true, to: `${status}.parked` });
      const parked = `${status}.parked`;
      expect(volume.index.stepStates).not.toContain(parked);
      expect(volume.index.isTransient(parked) || volume.index.held(parked).length > 0).toBe(false);
      const leaving = Object.keys(volume.events).filter(
        (type) => decide(volume, { state: parked, context: quiet }, { type, status: 'error' }).ok,
      );
      expect(leaving.sort()).toEqual(['FORCE_DELETE', 'FORCE_DELETE_CASCADE', 'RESET_STATUS']);
    }
  });

  it('says gone for every event on the final state', () => {
    for (const type of Object.keys(volume.events)) {
      expect(decide(volume, { state: 'deleted', context: quiet }, { type, new_size: 9, status: 'error' })).toMatchObject({
        ok: false,
        kind: 'gone',
      });
    }
  });

  it('lists the client events allowed now, judging guards that do not depend on the event parameters', () => {
    expect(allowedNow(volume, { state: 'available', context: quiet })).toEqual([
      'DELETE',
      'DELETE_CASCADE',
      'FORCE_DELETE',
      'FORCE_DELETE_CASCADE',
      'EXTEND',
      'RESET_STATUS',
      'REVERT',
      'RETYPE',
      'TRANSFER_OFFER',
    ]);
    expect(allowedNow(volume, { state: 'available', context: { ...quiet, readers: 1 } })).toEqual(['RESET_STATUS']);
    expect(allowedNow(volume, { state: 'deleting.backend', context: quiet })).toEqual([]);
    expect(allowedNow(volume, { state: 'error_deleting', context: quiet })).toEqual([
      'FORCE_DELETE',
      'FORCE_DELETE_CASCADE',
      'RESET_STATUS',
    ]);
    expect(allowedNow(volume, { state: 'in-use', context: { ...quiet, att_attached: 1 } })).toEqual(['EXTEND', 'RESET_STATUS', 'RETYPE']);
    expect(allowedNow(volume, { state: 'deleted', context: quiet })).toEqual([]);
  });
});

describe('recovery (WORKER_LOST)', () => {
  it('resumes a lost step twice, then gives up into the matching error state', () => {
    let context: VolumeContext = { ...quiet, operation: { new_size: 5 } };
    for (let attempt = 1; attempt < MAX_STEP_ATTEMPTS; attempt++) {
      const d = decide(volume, { state: 'extending.backend', context }, { type: 'WORKER_LOST' });
      expect(d).toMatchObject({ ok: true, to: 'extending.backend', context: { operation: { new_size: 5, lost: attempt } } });
      context = (d as { context: VolumeContext }).context;
    }
    expect(decide(volume, { state: 'extending.backend', context }, { type: 'WORKER_LOST' })).toMatchObject({
      ok: true,
      to: 'error_extending',
      context: { operation: null },
    });
  });

  it('starts scheduling again from the queue, and forgets the losses once the operation ends', () => {
    const lost = decide(volume, { state: 'creating.scheduling', context: quiet }, { type: 'WORKER_LOST' });
    expect(lost).toMatchObject({ ok: true, to: 'creating.db', context: { operation: { lost: 1 } } });
    const created = decide(
      volume,
      { state: 'creating.backend', context: { ...quiet, operation: { lost: 2 } } },
      { type: 'BACKEND_CREATED' },
    );
    expect(created).toMatchObject({ ok: true, to: 'available', context: { operation: null } });
  });
});

describe('decide on the snapshot machine', () => {
  it('counts readers and refuses deletion while read', () => {
    const ctx = { readers: 0, size: 1, operation: null, owner: null };
    const read = decide(snapshot, { state: 'available', context: ctx }, { type: 'READ_BEGIN' });
    expect(read).toMatchObject({ ok: true, to: 'available', context: { readers: 1 } });
    const del = decide(snapshot, { state: 'available', context: { ...ctx, readers: 1 } }, { type: 'DELETE' });
    expect(del).toMatchObject({ ok: false, kind: 'busy' });
  });
});

describe('XState alone cannot tell refusal from no-op', () => {
  it('returns the same snapshot for an unhandled event, where decide refuses', () => {
    const snap = volume.machine.resolveState({ value: { deleting: 'backend' }, context: quiet });
    const [next] = transition(volume.machine, snap, { type: 'EXTEND', new_size: 9 });
    expect(next.value).toEqual(snap.value); // silently "fine"
    expect(decide(volume, { state: 'deleting.backend', context: quiet }, { type: 'EXTEND', new_size: 9 })).toMatchObject({
      ok: false,
      kind: 'busy',
    });
  });
});

describe('defineResource', () => {
  const machine = setup({ types: { context: {} as { n: number }, events: {} as { type: 'GO' } } }).createMachine({
    id: 'tiny',
    initial: 'a',
    context: { n: 0 },
    states: { a: { on: { GO: 'b' } }, b: {} },
  });
  const base = {
    type: 'tiny',
    noun: 'tiny',
    machine,
    statuses: ['a', 'b'],
    resettable: [],
    context: { n: 'int' },
    events: { GO: { by: 'api', params: {}, doc: '' } },
    guards: {},
    effects: {},
    releases: {},
  } as const;

  it('accepts a model whose tables match its machine', () => {
    expect(defineResource({ ...base, states: ['a', 'b'] }).index.initial).toBe('a');
  });
  it('rejects a state tuple that differs from the machine', () => {
    expect(() => defineResource({ ...base, states: ['a', 'b', 'c'] })).toThrow(/state tuple/);
  });
  it('rejects an event the machine handles but the table does not declare', () => {
    expect(() => defineResource({ ...base, states: ['a', 'b'], events: {} })).toThrow(/does not declare/);
  });
  it('rejects a transient state nobody recovers: a step without WORKER_LOST, or no step and no movedOnBy', () => {
    const withStep = (meta: Record<string, string>) =>
      setup({ types: { context: {} as { n: number }, events: {} as { type: 'GO' } } }).createMachine({
        id: 'tiny',
        initial: 'a',
        context: { n: 0 },
        states: { a: { on: { GO: 'b' } }, b: { tags: [TRANSIENT], meta } },
      });
    expect(() => defineResource({ ...base, machine: withStep({ step: 'work' }), states: ['a', 'b'] })).toThrow(/no WORKER_LOST/);
    expect(() => defineResource({ ...base, machine: withStep({}), states: ['a', 'b'] })).toThrow(/what moves it on/);
    expect(defineResource({ ...base, machine: withStep({ movedOnBy: 'the client' }), states: ['a', 'b'] }).index.isTransient('b')).toBe(
      true,
    );
  });
});
