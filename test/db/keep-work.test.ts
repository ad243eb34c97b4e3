/**
 * src/enforcer.ts keepWork: a row a transition leaves pending work is handed
 * to a worker of the same process that has a free slot, once the transition
 * has committed, with no NOTIFY (PostgreSQL serializes the commits of every
 * transaction that sends one, database-wide). With no such worker, or in a
 * transaction the enforcer cannot see commit, every node is told, as before.
 *
 * "No NOTIFY" is shown without waiting on a clock: notifications reach a
 * listener in commit order, so once a marker sent after the transitions has
 * arrived, everything they sent has arrived before it.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WORK_CHANNEL } from '../../db/cas.ts';
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
  const w = { roomy: true, wakes: 0 };
  const enforcer = new Enforcer();
  enforcer.keepWork({ room: () => w.roomy, wake: () => w.wakes++ });
  return { w, enforcer };
}

describe('work a transition makes', () => {
  it('is kept by a worker of the process that has room, announced to nobody; with no room, every node is told', async () => {
    const { w, enforcer } = localWorker();
    await heard();
    // A volume is created in `creating.db`, a state with a worker step: pending work.
    const kept = await enforcer.create(db.sql, { type: 'volume', id: randomUUID() }, { size: 1 }, { actor: 'u:p' });
    expect(kept).toMatchObject({ state: 'creating.db', owner: null });
    expect(w.wakes).toBe(1);
    w.roomy = false;
    await enforcer.create(db.sql, { type: 'volume', id: randomUUID() }, { size: 1 }, { actor: 'u:p' });
    expect(w.wakes).toBe(1);
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
    let wakesInside = -1;
    await transaction(db.sql, {}, async (tx) => {
      expect(await enforcer.apply(tx, { type: 'volume', id: a }, extend, { actor: 'u:p' })).toMatchObject({
        ok: true,
        row: { state: 'extending.backend', owner: null },
      });
      wakesInside = w.wakes;
    });
    expect(wakesInside).toBe(0);
    expect(w.wakes).toBe(1);

    await expect(
      transaction(db.sql, {}, async (tx) => {
        await enforcer.apply(tx, { type: 'volume', id: b }, extend, { actor: 'u:p' });
        throw new Error('the caller gives up');
      }),
    ).rejects.toThrow('the caller gives up');
    expect(w.wakes).toBe(1);
    expect(enforcer.pendingWork).toEqual({ kept: 1, announced: 0 }); // the rolled-back one made no work
    expect(await getRow(db.sql, 'volume', b)).toMatchObject({ state: 'available' });
    expect(await heard()).toEqual([]);
  });

  it('in a transaction opened elsewhere is announced to every node (its commit cannot be seen)', async () => {
    const { w, enforcer } = localWorker();
    await heard();
    const id = await putRow(db.sql, MODELS.volume, 'available', volumeContext);
    // a transaction db/tx.ts did not open, on purpose
    await db.sql.begin((tx) =>
      enforcer.apply(tx, { type: 'volume', id }, { type: 'EXTEND', new_size: 2, in_use: false }, { actor: 'u:p' }),
    );
    expect(w.wakes).toBe(0);
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
