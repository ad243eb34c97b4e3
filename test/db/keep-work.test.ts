/**
 * src/enforcer.ts keepWork: a row a transition leaves pending work is kept
 * by a worker of the same process that has a free slot: the transition's
 * own statement makes it the row's owner (db/cas.ts KEEPER), and the row is
 * handed to it once the transition has committed, with no claim and no
 * NOTIFY (PostgreSQL serializes the commits of every transaction that sends
 * one, database-wide). With no such worker, or in a transaction the
 * enforcer cannot see commit, the row stays pending and every node is told,
 * as before.
 *
 * "No NOTIFY" is shown without waiting on a clock: notifications reach a
 * listener in commit order, so once a marker sent after the transitions has
 * arrived, everything they sent has arrived before it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORK_CHANNEL } from '../../db/cas.ts';
import type { ClaimedRow } from '../../db/queue.ts';
import { transaction } from '../../db/tx.ts';
import { MODELS } from '../../machines/index.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { Enforcer } from '../../src/enforcer.ts';
import { Worker } from '../../src/worker/worker.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { getRow, putRow } from '../helpers/rows.ts';
import { until } from '../helpers/wait.ts';

const db = useTestDatabase({ max: 4 });
const volumeContext = { ...(MODELS.volume.machine.config.context as Record<string, unknown>), size: 1 };

/** Everything said on WORK_CHANNEL since the last `heard()`. */
let said: string[] = [];
let unlisten: () => Promise<void>;
beforeAll(async () => {
  const l = await db.sql.listen(WORK_CHANNEL, (payload) => said.push(payload));
  unlisten = () => l.unlisten();
});
afterAll(() => unlisten?.());

/** What was announced on WORK_CHANNEL by what committed before this call (a marker closes the list). */
async function heard(): Promise<string[]> {
  const marker = `marker-${randomUUID()}`;
  await db.sql`SELECT pg_notify(${WORK_CHANNEL}, ${marker})`;
  await until(() => said.includes(marker), 10_000, 'the marker notification');
  const before = said.slice(0, said.indexOf(marker));
  said = said.slice(said.indexOf(marker) + 1);
  return before;
}

function localWorker() {
  const w = { id: `worker:test:${randomUUID()}`, roomy: true, wakes: 0, adopted: [] as ClaimedRow[] };
  const enforcer = new Enforcer();
  enforcer.keepWork({ id: w.id, room: () => w.roomy, adopt: (row) => w.adopted.push(row), wake: () => w.wakes++ });
  return { w, enforcer };
}

describe('work a transition makes', () => {
  it('is owned at birth by a worker of the process that has room and handed to it, announced to nobody; with no room, every node is told', async () => {
    const { w, enforcer } = localWorker();
    await heard();
    // A volume is created in `creating.db`, a state with a worker step: work, owned by the local worker in the same statement.
    const id = randomUUID();
    const kept = await enforcer.create(db.sql, { type: 'volume', id }, { size: 1 }, { actor: 'u:p' });
    expect(kept).toMatchObject({ state: 'creating.db', owner: w.id });
    expect(kept).not.toHaveProperty('data_volume_id'); // the step's extras go to the worker, not into the row
    expect(w.adopted).toEqual([expect.objectContaining({ resource_id: id, state: 'creating.db', owner: w.id, data_volume_id: null })]);
    expect(w.wakes).toBe(0); // nothing to claim
    w.roomy = false;
    const other = await enforcer.create(db.sql, { type: 'volume', id: randomUUID() }, { size: 1 }, { actor: 'u:p' });
    expect(other).toMatchObject({ state: 'creating.db', owner: null }); // pending work, for any worker to claim
    expect(w.adopted).toHaveLength(1);
    expect(w.wakes).toBe(0);
    expect(await heard()).toEqual(['volume']);
    expect(enforcer.pendingWork).toEqual({ kept: 1, announced: 1 });

    // An enforcer with no worker of its process tells every node, as before.
    await new Enforcer().create(db.sql, { type: 'volume', id: randomUUID() }, { size: 1 }, { actor: 'u:p' });
    expect(await heard()).toEqual(['volume']);
  });

  it('in a transaction wakes the worker once committed, never when rolled back, and is announced to nobody', async () => {
    const { w, enforcer } = localWorker();
    await heard();
    const [a, b] = [
      await putRow(db.sql, MODELS.volume, 'available', volumeContext),
      await putRow(db.sql, MODELS.volume, 'available', volumeContext),
    ];
    const extend = { type: 'EXTEND', new_size: 2, in_use: false } as const;
    let adoptedInside = -1;
    await transaction(db.sql, {}, async (tx) => {
      expect(await enforcer.apply(tx, { type: 'volume', id: a }, extend, { actor: 'u:p' })).toMatchObject({
        ok: true,
        row: { state: 'extending.backend', owner: w.id },
      });
      adoptedInside = w.adopted.length;
    });
    expect(adoptedInside).toBe(0);
    expect(w.adopted.map((r) => r.resource_id)).toEqual([a]);

    await expect(
      transaction(db.sql, {}, async (tx) => {
        await enforcer.apply(tx, { type: 'volume', id: b }, extend, { actor: 'u:p' });
        throw new Error('the caller gives up');
      }),
    ).rejects.toThrow('the caller gives up');
    expect(w.adopted).toHaveLength(1);
    expect(w.wakes).toBe(0);
    expect(enforcer.pendingWork).toEqual({ kept: 1, announced: 0 }); // the rolled-back one made no work
    expect(await getRow(db.sql, 'volume', b)).toMatchObject({ state: 'available' });
    expect(await heard()).toEqual([]);
  });

  it('keeps a row whose step waits for a guard only when the guard holds on the row it leaves', async () => {
    const { w, enforcer } = localWorker();
    await heard();
    // deleting.backend's step waits for the volume's snapshots to go (meta.ready: noSnapshots, dependents = 0).
    const bare = await putRow(db.sql, MODELS.volume, 'available', volumeContext);
    const withSnapshot = await putRow(db.sql, MODELS.volume, 'available', { ...volumeContext, dependents: 1 });
    const cascade = { type: 'DELETE_CASCADE' } as const;
    expect(await enforcer.apply(db.sql, { type: 'volume', id: bare }, cascade, { actor: 'u:p' })).toMatchObject({
      ok: true,
      row: { state: 'deleting.backend', owner: w.id },
    });
    expect(await enforcer.apply(db.sql, { type: 'volume', id: withSnapshot }, cascade, { actor: 'u:p' })).toMatchObject({
      ok: true,
      row: { state: 'deleting.backend', owner: null },
    });
    expect(w.adopted.map((r) => r.resource_id)).toEqual([bare]);
  });

  it('gives a row back before a later statement of its transaction moves it again: adopted once, as the transaction left it, or not at all', async () => {
    const { w, enforcer } = localWorker();
    await heard();
    // A backup imported from a record: created (creating.backend, kept), then IMPORTed (creating.import, a step state too).
    const backup = randomUUID();
    // A member snapshot of a group snapshot: created (creating.backend, kept), then GROUPED (creating.group, no step), which needs it unowned.
    const member = randomUUID();
    await transaction(db.sql, {}, async (tx) => {
      await enforcer.create(tx, { type: 'backup', id: backup }, { size: 1 }, { actor: 'u:p' });
      expect(await enforcer.apply(tx, { type: 'backup', id: backup }, { type: 'IMPORT' }, { actor: 'u:p' })).toMatchObject({
        ok: true,
        row: { state: 'creating.import', owner: w.id },
      });
      await enforcer.create(tx, { type: 'snapshot', id: member }, { size: 1 }, { actor: 'u:p' });
      expect(await enforcer.apply(tx, { type: 'snapshot', id: member }, { type: 'GROUPED' }, { actor: 'u:p' })).toMatchObject({
        ok: true,
        row: { state: 'creating.group', owner: null },
      });
    });
    expect(w.adopted.map((r) => [r.resource_id, r.state])).toEqual([[backup, 'creating.import']]);
    expect(await getRow(db.sql, 'snapshot', member)).toMatchObject({ state: 'creating.group', owner: null });
    expect(enforcer.pendingWork).toEqual({ kept: 1, announced: 0 });
    expect(await heard()).toEqual([]);
  });

  it('in a transaction opened elsewhere is announced to every node (its commit cannot be seen)', async () => {
    const { w, enforcer } = localWorker();
    await heard();
    const id = await putRow(db.sql, MODELS.volume, 'available', volumeContext);
    // a transaction db/tx.ts did not open, on purpose
    const moved = await db.sql.begin((tx) =>
      enforcer.apply(tx, { type: 'volume', id }, { type: 'EXTEND', new_size: 2, in_use: false }, { actor: 'u:p' }),
    );
    expect(moved).toMatchObject({ ok: true, row: { state: 'extending.backend', owner: null } });
    expect(w.wakes).toBe(0);
    expect(w.adopted).toHaveLength(0);
    expect(await heard()).toEqual(['volume']);
  });

  it('goes to a running worker of the process; once it stops, every node is told, and it announces what it kept', async () => {
    const enforcer = new Enforcer();
    const worker = new Worker({ sql: db.sql, enforcer, driver: new FakeDriver(), concurrency: 64, pollMs: 60_000, log: () => {} });
    // 64 slots: the rows the tests above left pending (a handful) are claimed at its start and leave it room.
    await worker.start();
    await heard();
    // A bare state row (no data row): its step goes nowhere, but the hand-over is what is looked at.
    await enforcer.create(db.sql, { type: 'volume', id: randomUUID() }, { size: 1 }, { actor: 'u:p' });
    expect(enforcer.pendingWork).toEqual({ kept: 1, announced: 0 });
    await worker.stop();
    expect(await heard()).toContain('handover');
    await enforcer.create(db.sql, { type: 'volume', id: randomUUID() }, { size: 1 }, { actor: 'u:p' });
    expect(enforcer.pendingWork).toEqual({ kept: 1, announced: 1 });
    expect(await heard()).toEqual(['volume']);
  });
});
