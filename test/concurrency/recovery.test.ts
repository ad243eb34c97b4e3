/**
 * Crash recovery with real workers on real PostgreSQL: rows owned by a
 * dead worker are sent WORKER_LOST and finished by a live one; recovery
 * waits until the recoverer's own heartbeats are sound; two recoverers
 * never both apply it; a step lost three times goes to its error state
 * and gives back the reader its operation held; a step whose resource is
 * fenced by another session's lock is left alone; a graceful stop hands
 * its rows back at once; a live worker hands back the rows it owns but
 * runs no step for (a hand-back lost with the connection).
 */
import { randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { heartbeat, rowsOfDeadOwners } from '../../db/workers.ts';
import { Coordination } from '../../src/coordination/locks.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { Enforcer } from '../../src/enforcer.ts';
import { Worker, type WorkerOptions } from '../../src/worker/worker.ts';
import { eventually } from '../helpers/wait.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { history } from '../helpers/rows.ts';

const db = useTestDatabase({ max: 30 });
const enforcer = new Enforcer();
const DEAD = 'worker:dead-node:1:000000';
const started: Worker[] = [];

afterEach(async () => {
  await Promise.all(started.splice(0).map((w) => w.stop()));
});

async function worker(opts: Partial<WorkerOptions> = {}) {
  const log = process.env.VOLSTATE_TEST_LOG ? (m: string, f?: Record<string, unknown>) => console.log(m, f) : undefined;
  const w = new Worker({
    sql: db.sql,
    enforcer,
    driver: new FakeDriver(),
    concurrency: 8,
    pollMs: 100,
    heartbeatMs: 50,
    timeoutMs: 300,
    log,
    ...opts,
  });
  await w.start();
  started.push(w);
  return w;
}

/** A new volume (data and state rows) in the machine's initial state. */
async function newVolume(): Promise<string> {
  const id = randomUUID();
  await db.sql`INSERT INTO volumes (id, project_id) VALUES (${id}, 'p')`;
  await enforcer.create(db.sql, { type: 'volume', id }, { size: 1 }, { actor: 'test' });
  return id;
}

/** A volume in `state`, owned by the dead worker (a fixture: what a crash leaves). */
async function ownedByTheDead(state: string, extra: Record<string, unknown> = {}) {
  const id = await newVolume();
  await db.sql`UPDATE resource_states SET state = ${state}, owner = ${DEAD}, operation = ${db.sql.json((extra.operation ?? null) as never)} WHERE resource_id = ${id}`;
  return id;
}

async function deadWorkerRow() {
  await db.sql`INSERT INTO workers (id, host, pid, heartbeat_at) VALUES (${DEAD}, 'dead-node', 1, now() - interval '1 hour') ON CONFLICT DO NOTHING`;
}

const rowOf = async (id: string) => (await db.sql`SELECT * FROM resource_states WHERE resource_id = ${id}`)[0]!;

describe('recovery of a dead worker', () => {
  it('resumes the step and a live worker finishes it', async () => {
    await deadWorkerRow();
    const driver = new FakeDriver();
    const id = await ownedByTheDead('extending.backend', { operation: { new_size: 4 } });
    await driver.createVolume(id, 1);
    const live = await worker({ driver });
    const row = await eventually(
      async () => {
        const r = await rowOf(id);
        return r.state === 'available' ? r : undefined;
      },
      5000,
      'the extend to be finished',
    );
    expect(row).toMatchObject({ size: 4, owner: null, operation: null });
    expect(driver.volumes.get(id)).toBe(4);
    const log = await history(db.sql, id);
    expect(log.slice(-2)).toEqual([
      expect.objectContaining({
        event: 'WORKER_LOST',
        from_state: 'extending.backend',
        to_state: 'extending.backend',
        actor: `recovery:${live.id}`,
      }),
      expect.objectContaining({ event: 'EXTENDED', to_state: 'available', actor: live.id }),
    ]);
    // The dead worker, owning nothing now, is forgotten.
    await eventually(async () => ((await db.sql`SELECT 1 FROM workers WHERE id = ${DEAD}`).length === 0 ? true : undefined));
  });

  it('waits until its own heartbeats have been sound for a whole timeout', async () => {
    await deadWorkerRow();
    const id = await ownedByTheDead('deleting.backend');
    const w = new Worker({
      sql: db.sql,
      enforcer,
      driver: new FakeDriver(),
      concurrency: 1,
      pollMs: 60_000,
      heartbeatMs: 10_000,
      timeoutMs: 10_000,
    });
    await w.start();
    started.push(w);
    expect(await w.recover()).toBe(0);
    expect((await rowOf(id)).owner).toBe(DEAD);
  });

  it('never applies WORKER_LOST twice, whoever recovers', async () => {
    await deadWorkerRow();
    const ids = await Promise.all(Array.from({ length: 30 }, () => ownedByTheDead('deleting.backend')));
    const opts = { pollMs: 60_000, timeoutMs: 200, heartbeatMs: 50 };
    const [a, b, c] = [await worker(opts), await worker(opts), await worker(opts)];
    // Each recovers only once its own heartbeats have been sound for a whole
    // timeout; how soon that is depends on the machine's load, so call all
    // three at once, again and again, until the rows are taken back — each
    // round a race between three recoverers.
    const lostCount = async () =>
      db.sql`SELECT resource_id, count(*)::int AS n FROM state_transitions WHERE event = 'WORKER_LOST' AND resource_id IN ${db.sql(ids)} GROUP BY resource_id`;
    const counts: number[] = [];
    const lost = await eventually(
      async () => {
        counts.push(...(await Promise.all([a.recover(), b.recover(), c.recover()])));
        const rows = await lostCount();
        return rows.length === 30 ? rows : undefined;
      },
      20_000,
      "the dead worker's rows to be taken back",
    );
    expect(lost).toHaveLength(30);
    expect(lost.every((r) => r.n === 1)).toBe(true);
    // Between them (their loops and these calls) they recovered every row; each
    // once. (A loop's round may still be counting when the direct calls return;
    // an earlier test's row of the dead worker may be among them.)
    await eventually(async () => (a.recovered + b.recovered + c.recovered >= 30 ? true : undefined), 3000, 'every recovery to be counted');
    expect(counts.every((n) => n >= 0)).toBe(true);
  });

  it('gives up after three lost attempts, into the error state, and gives the reader back', async () => {
    await deadWorkerRow();
    const volumeId = await newVolume();
    const snapId = randomUUID();
    await db.sql`UPDATE resource_states SET state = 'available' WHERE resource_id = ${volumeId}`;
    await db.sql.begin(async (tx) => {
      const taken = await enforcer.acquire(
        tx,
        { type: 'volume', id: volumeId },
        { type: 'SNAPSHOT_BEGIN', force: false },
        { type: 'snapshot', id: snapId },
        ['reader', 'dependent'],
        { actor: 'test' },
      );
      expect(taken.ok).toBe(true);
      await tx`INSERT INTO snapshots (id, project_id, volume_id) VALUES (${snapId}, 'p', ${volumeId})`;
      await enforcer.create(tx, { type: 'snapshot', id: snapId }, { size: 1 }, { actor: 'test' });
    });
    await db.sql`UPDATE resource_states SET owner = ${DEAD}, operation = ${db.sql.json({ lost: 2 })} WHERE resource_id = ${snapId}`;
    await worker();
    await eventually(async () => ((await rowOf(snapId)).state === 'error' ? true : undefined), 5000, 'the snapshot to give up');
    expect(await rowOf(volumeId)).toMatchObject({ readers: 0, dependents: 1 });
  });
});

describe('fencing and graceful stop', () => {
  it('leaves a step alone while another session holds its resource, then runs it', async () => {
    const locks = new Coordination({ dir: mkdtempSync(join(tmpdir(), 'volstate-fence-')), databaseUrl: db.url });
    const driver = new FakeDriver();
    const id = await newVolume();
    const fence = await locks.lock(`resource-volume:${id}`, { scope: 'global' });
    // Held before the worker starts: a frozen previous owner would hold it like this.
    const w = await worker({ driver, coordination: locks, pollMs: 50 });
    // The worker claimed the step, met the fence, and handed the row back without touching the backend.
    await eventually(async () => (w.fenced > 0 ? true : undefined), 10_000, 'the worker to meet the fence');
    // The fence guards the backend, not the row: the step may have moved the row (scheduling
    // it, each statement checking it is the owner) before it waited for the fence at its first
    // backend call; it is still creating.
    expect(driver.volumes.has(id)).toBe(false);
    expect((await rowOf(id)).state).toMatch(/^creating\.(db|scheduling|backend)$/);
    await fence.release();
    // Handed back with a back-off while fenced; done once the fence is gone.
    await eventually(async () => ((await rowOf(id)).state === 'available' ? true : undefined), 8000, 'the create after the fence');
    expect(w.completed).toBeGreaterThan(0);
    await locks.close();
  });

  it('hands back what it owns when it stops, and another worker finishes it', async () => {
    // The first worker's step is held in its backend call until the test lets it go: the
    // order is the test's, not a latency's (a 700 ms driver once lost the race under load,
    // finishing the row itself before the second worker's recovery came).
    let entered!: () => void;
    const inCall = new Promise<void>((r) => (entered = r));
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held = new (class extends FakeDriver {
      override async createVolume(id: string, sizeGb: number) {
        entered();
        await gate;
        return super.createVolume(id, sizeGb);
      }
    })();
    let refused!: (fields: Record<string, unknown> | undefined) => void;
    const refusal = new Promise<Record<string, unknown> | undefined>((r) => (refused = r));
    const id = await newVolume();
    const first = await worker({
      driver: held,
      drainMs: 0,
      log: (msg, fields) => {
        if (msg === 'step event refused') refused(fields);
      },
    });
    await inCall; // its step is in the backend call
    await first.stop(); // deregistered with the step in flight
    started.splice(started.indexOf(first), 1);
    const second = await worker({ driver: new FakeDriver(), timeoutMs: 300 });
    await eventually(async () => ((await rowOf(id)).state === 'available' ? true : undefined), 10_000, 'the second worker to finish');
    // Now the abandoned step comes back from the backend: its event is refused (the row is no longer its own).
    release();
    expect(await refusal).toMatchObject({ id, event: 'BACKEND_CREATED' });
    const log = await history(db.sql, id);
    expect(log.some((h) => h.event === 'WORKER_LOST' && h.actor === `recovery:${second.id}`)).toBe(true);
    expect(log.filter((h) => h.event === 'BACKEND_CREATED').map((h) => h.actor)).toEqual([second.id]);
  });

  it('hands back its own strays: a row it owns but runs no step for', async () => {
    const driver = new FakeDriver();
    const w = new Worker({ sql: db.sql, enforcer, driver, concurrency: 8, pollMs: 60_000, heartbeatMs: 50, timeoutMs: 300 });
    // What a step leaves when the database goes away under it: the row is
    // still ours, the step is over, and its hand-back could not be written.
    // Nobody else will recover it: its owner is alive.
    const id = await newVolume();
    await db.sql`UPDATE resource_states SET owner = ${w.id} WHERE resource_id = ${id}`;
    await w.start();
    started.push(w);
    await eventually(
      async () => ((await rowOf(id)).state === 'available' ? true : undefined),
      5000,
      'the stray to be handed back and done',
    );
    expect(w.strays).toBe(1);
    expect(w.recovered).toBe(0);
    expect(driver.volumes.get(id)).toBe(1);
  });
});

describe('judging the dead after an outage (a restart, a failover)', () => {
  const ME = 'worker:judge:1:aaaaaa';
  const OTHER = 'worker:other:2:bbbbbb';

  it('judges nobody dead until its own beats have come without a gap for a whole timeout, on the database clock', async () => {
    const id = await newVolume();
    // Both beat last 2 s ago: the database was away, for everybody.
    await db.sql`INSERT INTO workers (id, host, pid, heartbeat_at, healthy_since) VALUES
      (${ME}, 'judge', 1, now() - interval '2 s', now() - interval '1 hour'),
      (${OTHER}, 'other', 2, now() - interval '2 s', now() - interval '1 hour')`;
    await db.sql`UPDATE resource_states SET state = 'deleting.backend', owner = ${OTHER} WHERE resource_id = ${id}`;
    const judged = async () => (await rowsOfDeadOwners(db.sql, ME, 1000)).filter((r) => r.resource_id === id);

    // A statement held through the outage runs after it: ME's own beat is stale too, so no judgement.
    expect(await judged()).toEqual([]);
    // ME beats again: after a gap, so its clock starts again; still no judgement.
    await heartbeat(db.sql, ME, 1000);
    const [me] = await db.sql`SELECT healthy_since > now() - interval '1 s' AS fresh FROM workers WHERE id = ${ME}`;
    expect(me!.fresh).toBe(true);
    expect(await judged()).toEqual([]);
    // A whole timeout of good beats later (made so), OTHER, still silent, is dead.
    await db.sql`UPDATE workers SET healthy_since = now() - interval '2 s', heartbeat_at = now() WHERE id = ${ME}`;
    expect(await judged()).toEqual([expect.objectContaining({ owner: OTHER })]);
    // A beat without a gap keeps the clock.
    await heartbeat(db.sql, ME, 1000);
    const [kept] = await db.sql`SELECT healthy_since < now() - interval '1 s' AS kept FROM workers WHERE id = ${ME}`;
    expect(kept!.kept).toBe(true);
    await db.sql`DELETE FROM workers WHERE id IN (${ME}, ${OTHER})`;
    await db.sql`UPDATE resource_states SET owner = NULL WHERE resource_id = ${id}`;
  });
});
