/**
 * The compiled compare-and-swap against decide(): for every (state ×
 * event) of every machine, on a quiet row, a held row and random rows with
 * random parameters, `apply` in real PostgreSQL changes exactly what
 * `decide` says (state, every context column, version, history) or
 * refuses with the same reason and changes nothing at all.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { decide } from '../../machines/decide.ts';
import { MODELS, type ResourceModel } from '../../machines/index.ts';
import { Enforcer, type Outcome, type StateRow } from '../../src/enforcer.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { getRow, history, putRow, randomContext, randomParams, rng } from '../helpers/rows.ts';

const db = useTestDatabase();
const enforcer = new Enforcer();
const RANDOM_PER_CELL = 4;

const initial = (type: keyof typeof MODELS) => MODELS[type].machine.config.context as Record<string, unknown>;
const quiet: Record<string, Record<string, unknown>> = {
  volume: { ...initial('volume'), size: 2, operation: { new_size: 3 } },
  snapshot: { ...initial('snapshot'), size: 2 },
  attachment: initial('attachment'),
  backup: { ...initial('backup'), size: 2 },
  group: initial('group'),
  group_snapshot: initial('group_snapshot'),
};
const held: Record<string, Record<string, unknown>> = {
  volume: { ...quiet.volume, readers: 1, dependents: 1, backups: 1, att_attached: 1 },
  snapshot: { ...quiet.snapshot, readers: 1, backups: 1 },
  attachment: initial('attachment'),
  backup: { ...quiet.backup, readers: 1, dependents: 1 },
  group: { ...quiet.group, members: 1, dependents: 1 },
  group_snapshot: { ...quiet.group_snapshot, members: 1 },
};

function contextOfRow(model: ResourceModel, row: StateRow) {
  return Object.fromEntries(Object.keys(model.context).map((k) => [k, row[k as keyof StateRow]]));
}

/**
 * One cell of the matrix: the event to each of these rows (in `state`, with
 * these contexts and parameters), through `send`, checked row by row against
 * decide(). `send` is the single statement per row, or one batch (group
 * commit) carrying every row at once, each with its own parameters.
 */
async function checkCell(
  model: ResourceModel,
  state: string,
  event: string,
  cases: { context: Record<string, unknown>; params: Record<string, unknown> }[],
  send: (ids: string[], payloads: Record<string, unknown>[]) => Promise<Outcome[]>,
): Promise<{ applied: number; refused: number }> {
  const sql = db.sql;
  let applied = 0;
  let refused = 0;
  const ids: string[] = [];
  for (const { context } of cases) ids.push(await putRow(sql, model, state, context));
  const befores = await Promise.all(ids.map(async (id) => (await getRow(sql, model.type, id))!));
  const payloads = cases.map(({ params }) => ({ type: event, ...params }));
  const outcomes = await send(ids, payloads);
  for (const [i, { context, params }] of cases.entries()) {
    const id = ids[i]!;
    const before = befores[i]!;
    const outcome = outcomes[i]!;
    const expected = decide(model, { state, context }, payloads[i]!);
    const after = (await getRow(sql, model.type, id))!;
    const log = await history(sql, id);
    const where = `${event} ${JSON.stringify(params)} on ${state} ${JSON.stringify(context)}`;

    if (expected.ok) {
      applied++;
      expect(outcome.ok, where).toBe(true);
      expect(after.state, where).toBe(expected.to);
      const expectedContext: Record<string, unknown> = { ...expected.context };
      // Ownership is the enforcer's, not the machine's: a state change
      // hands the row to `nextOwner` (here nobody); a self-transition keeps it.
      const selfTransition = model.index.candidates(state, event).find((c) => c.guard === expected.guard)?.target === null;
      expectedContext.owner = selfTransition ? context.owner : null;
      expect(contextOfRow(model, after), where).toEqual(expectedContext);
      expect(after.version, where).toBe(before.version + 1);
      expect(after.previous_state, where).toBe(state);
      expect(outcome.ok && outcome.row, where).toEqual(after);
      expect(log, where).toEqual([{ from_state: state, event, to_state: expected.to, version: before.version + 1, actor: 'test:matrix' }]);
    } else {
      refused++;
      expect(outcome.ok, where).toBe(false);
      expect(!outcome.ok && outcome.kind, where).toBe(expected.kind);
      expect(!outcome.ok && outcome.state, where).toBe(state);
      expect(after, where).toEqual(before);
      expect(log, where).toEqual([]);
    }
  }
  return { applied, refused };
}

/** A cell's rows: a quiet one, a held one and RANDOM_PER_CELL random ones, each with random parameters. */
function casesOf(model: ResourceModel, event: string, r: ReturnType<typeof rng>) {
  const contexts = [quiet[model.type]!, held[model.type]!];
  for (let i = 0; i < RANDOM_PER_CELL; i++) contexts.push(randomContext(model, r));
  return contexts.map((context) => ({ context, params: randomParams(model, event, r, context) }));
}

const single = (model: ResourceModel) => (ids: string[], payloads: Record<string, unknown>[]) =>
  Promise.all(
    ids.map((id, i) => enforcer.apply(db.sql, { type: model.type as never, id }, payloads[i] as never, { actor: 'test:matrix' })),
  );

const batched = (model: ResourceModel) => async (ids: string[], payloads: Record<string, unknown>[]) => {
  const items = ids.map((id, i) => ({ id, event: payloads[i] as never, opts: { actor: 'test:matrix' } }));
  const before = { ...enforcer.batches };
  const settled = await enforcer.applyBatch(db.sql, model.type as never, items);
  // One statement carried them all: none went alone after PostgreSQL refused the batch.
  expect(enforcer.batches).toEqual({ statements: before.statements + 1, rows: before.rows + items.length, fallbacks: before.fallbacks });
  return settled.map((s) => {
    if (s.status === 'rejected') throw s.reason;
    return s.value;
  });
};

for (const model of Object.values(MODELS) as ResourceModel[]) {
  describe(`${model.type}: apply() does what decide() says`, () => {
    for (const state of model.states) {
      it(`from ${state}`, async () => {
        const r = rng(state.length * 7919 + model.type.length);
        let applied = 0;
        let refused = 0;
        for (const event of Object.keys(model.events)) {
          const n = await checkCell(model, state, event, casesOf(model, event, r), single(model));
          applied += n.applied;
          refused += n.refused;
        }
        // Both sides of the matrix are exercised from this state.
        if (!model.index.isFinal(state)) expect(applied, 'some event applied').toBeGreaterThan(0);
        expect(refused).toBeGreaterThan(0);
      });
    }
  });

  // Group commit: every event that goes without a transaction, to all of a cell's rows
  // in ONE statement (src/group-commit.ts): each row's outcome as if it had gone alone.
  describe(`${model.type}: applyBatch() does for each row what decide() says`, () => {
    for (const state of model.states) {
      it(`from ${state}`, async () => {
        const r = rng(state.length * 104729 + model.type.length);
        let applied = 0;
        let refused = 0;
        for (const event of Object.keys(model.events).filter((e) => enforcer.batchable(model.type as never, e))) {
          const n = await checkCell(model, state, event, casesOf(model, event, r), batched(model));
          applied += n.applied;
          refused += n.refused;
        }
        if (!model.index.isFinal(state)) expect(applied + refused, 'some event tried').toBeGreaterThan(0);
        expect(refused).toBeGreaterThan(0);
      });
    }
  });
}

describe('apply() outside the matrix', () => {
  it('refuses a missing row as missing', async () => {
    const outcome = await enforcer.apply(
      db.sql,
      { type: 'volume', id: '00000000-0000-4000-8000-000000000000' },
      { type: 'DELETE' },
      { actor: 't' },
    );
    expect(outcome).toMatchObject({ ok: false, kind: 'missing' });
  });

  it('checks If-Match against the version in the same statement', async () => {
    const id = await putRow(db.sql, MODELS.volume, 'available', quiet.volume!);
    const stale = await enforcer.apply(
      db.sql,
      { type: 'volume', id },
      { type: 'EXTEND', new_size: 5, in_use: false },
      { actor: 't', version: 7 },
    );
    expect(stale).toMatchObject({ ok: false, kind: 'stale', state: 'available' });
    const fresh = await enforcer.apply(
      db.sql,
      { type: 'volume', id },
      { type: 'EXTEND', new_size: 5, in_use: false },
      { actor: 't', version: 1 },
    );
    expect(fresh).toMatchObject({ ok: true, row: { state: 'extending.backend', version: 2 } });
  });

  it('writes each row its own data in a batch: SCHEDULED records each volume its backend', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      const id = await putRow(db.sql, MODELS.volume, 'creating.scheduling', { ...quiet.volume, owner: 'worker:a' });
      await db.sql`INSERT INTO volumes (id, project_id, user_id, name) VALUES (${id}, 'p', 'u', 'v')`;
      ids.push(id);
    }
    const before = { ...enforcer.batches };
    const settled = await enforcer.applyBatch(
      db.sql,
      'volume',
      ids.map((id, i) => ({
        id,
        event: { type: 'SCHEDULED' as const, backend: `b${i}` },
        // the last one is not this worker's: refused, and its volume keeps no backend
        opts: { actor: 'worker:a', owner: i === 2 ? 'worker:b' : 'worker:a', nextOwner: 'worker:a' },
      })),
    );
    // as one statement, not each alone after PostgreSQL refused the batch
    expect(enforcer.batches).toEqual({ statements: before.statements + 1, rows: before.rows + 3, fallbacks: before.fallbacks });
    expect(settled.map((s) => s.status === 'fulfilled' && s.value.ok)).toEqual([true, true, false]);
    const rows = await db.sql`SELECT id, backend FROM volumes WHERE id IN ${db.sql(ids)}`;
    expect(ids.map((id) => rows.find((r) => r.id === id)!.backend)).toEqual(['b0', 'b1', null]);
  });

  it('lets a worker step move only a row it owns, and hands the row on as asked', async () => {
    const id = await putRow(db.sql, MODELS.volume, 'creating.scheduling', { ...quiet.volume, owner: 'worker:a' });
    await db.sql`INSERT INTO volumes (id, project_id, user_id, name) VALUES (${id}, 'p', 'u', 'v')`;
    const ref = { type: 'volume' as const, id };
    const backend = async () => (await db.sql`SELECT backend FROM volumes WHERE id = ${id}`)[0]!.backend as string | null;
    const thief = await enforcer.apply(db.sql, ref, { type: 'SCHEDULED', backend: 'b-thief' }, { actor: 'worker:b', owner: 'worker:b' });
    expect(thief).toMatchObject({ ok: false, kind: 'not_owner', state: 'creating.scheduling' });
    // SCHEDULED writes the backend chosen on the volume (the event's `data`), with the move or not at all.
    expect(await backend()).toBeNull();
    const owner = await enforcer.apply(
      db.sql,
      ref,
      { type: 'SCHEDULED', backend: 'b-owner' },
      { actor: 'worker:a', owner: 'worker:a', nextOwner: 'worker:a' },
    );
    expect(owner).toMatchObject({ ok: true, row: { state: 'creating.backend', owner: 'worker:a' } });
    expect(await backend()).toBe('b-owner');
    const done = await enforcer.apply(db.sql, ref, { type: 'BACKEND_CREATED' }, { actor: 'worker:a', owner: 'worker:a' });
    expect(done).toMatchObject({ ok: true, row: { state: 'available', owner: null } });
  });

  for (const model of Object.values(MODELS) as ResourceModel[]) {
    it(`creates a ${model.type} row in the initial state with its history, in one statement`, async () => {
      const id = randomUUID();
      const given = 'size' in model.context ? { size: 4 } : {};
      const row = await enforcer.create(db.sql, { type: model.type as 'volume', id }, given, { actor: 'u:p', requestId: 'req-1' });
      expect(row).toMatchObject({ state: model.index.initial, version: 1, owner: null, ...given });
      expect(await history(db.sql, id)).toEqual([
        { from_state: null, event: 'CREATE', to_state: model.index.initial, version: 1, actor: 'u:p' },
      ]);
    });
  }
});

describe('a lease is taken once', () => {
  it('a second lease of the holder on the same source is a 409 conflict that rolls the source back, never a key error', async () => {
    const backup = await putRow(db.sql, MODELS.backup, 'available', { ...initial('backup') });
    const holder = { type: 'volume' as const, id: randomUUID() };
    const take = () =>
      db.sql.begin((tx) =>
        enforcer.acquire(tx, { type: 'backup', id: backup }, { type: 'RESTORE_BEGIN' }, holder, ['reader'], { actor: 'test' }),
      );
    expect(await take()).toMatchObject({ ok: true, row: { state: 'restoring', readers: 1 } });
    // Taken again (the harness met it: a restore onto a volume being created from that backup).
    await expect(take()).rejects.toMatchObject({ code: 'ResourceConflict', status: 409 });
    expect(await getRow(db.sql, 'backup', backup)).toMatchObject({ state: 'restoring', readers: 1 });
    const [leases] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM leases WHERE source_id = ${backup}`;
    expect(leases!.n).toBe(1);
  });
});
