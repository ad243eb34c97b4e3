/**
 * `Prefer: wait=N`: instead of 409/400 at once, a request waits for the
 * machine to allow it, woken by NOTIFY when the resource changes, served
 * in arrival order, and answers as the last attempt decided when the time
 * runs out.
 */
import { describe, expect, it } from 'vitest';
import { build } from '../../src/app.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { Enforcer } from '../../src/enforcer.ts';
import { ApiError } from '../../src/errors.ts';
import { Waits } from '../../src/waiting.ts';
import { WAITER_LEASE_MS } from '../../db/waiters.ts';
import { MODELS } from '../../machines/index.ts';
import { eventually, HEADERS, useApp, waitStatus } from '../helpers/app.ts';
import { putRow } from '../helpers/rows.ts';

const t = useApp({ latencyMs: 300 });
const wait = (seconds: number) => ({ prefer: `wait=${seconds}` });

/** Until `n` requests have joined the resource's queue (arrival order is what the tests below are about). */
const queued = (id: string, n: number) =>
  eventually(
    async () => ((await t.db.sql`SELECT count(*)::int AS n FROM waiters WHERE resource_id = ${id}`)[0]!.n >= n ? true : undefined),
    20_000,
    `${n} waiters on ${id}`,
  );

describe('Prefer: wait', () => {
  it('waits out a transient state, woken as soon as it ends (not at the deadline)', async () => {
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const id = created.body.volume.id;
    expect((await t.request('DELETE', `/v3/volumes/${id}`)).status).toBe(409); // the default: fail fast
    const res = await t.request('DELETE', `/v3/volumes/${id}`, undefined, wait(20));
    // 202, not the refusal the deadline would have answered: it was let in while waiting.
    expect(res.status).toBe(202);
    expect(res.headers['preference-applied']).toBe('wait=20');
    const [available, deleted] = await t.db.sql`
      SELECT version FROM state_transitions WHERE resource_id = ${id} AND event IN ('BACKEND_CREATED', 'DELETE') ORDER BY version`;
    // The waiter's DELETE is the very next transition after the volume became available.
    expect(deleted!.version).toBe(available!.version + 1);
    expect((await t.db.sql`SELECT count(*)::int AS n FROM waiters`)[0]!.n).toBe(0);
  });

  it('serves waiters in arrival order', async () => {
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const id = created.body.volume.id;
    await waitStatus(t, 'volumes', id, 'available');
    // Reserved for an attachment, the volume refuses extends until unreserved:
    // five queue behind that; each only works after the one before it
    // (2 < 3 < ...), so any other order would refuse one.
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reserve': null })).status).toBe(202);
    const pending: Promise<{ status: number }>[] = [];
    for (const size of [2, 3, 4, 5, 6]) {
      pending.push(t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: size } }, wait(30)));
      await queued(id, pending.length);
    }
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-unreserve': null })).status).toBe(202);
    expect((await Promise.all(pending)).map((r) => r.status)).toEqual([202, 202, 202, 202, 202]);
    const v = await waitStatus(t, 'volumes', id, 'available');
    expect(v.size).toBe(6);
    const extends_ = await t.db.sql`SELECT version FROM state_transitions WHERE resource_id = ${id} AND event = 'EXTEND'`;
    expect(extends_).toHaveLength(5);
  });

  it('answers with the last refusal when the time runs out', async () => {
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const id = created.body.volume.id;
    await waitStatus(t, 'volumes', id, 'available');
    await t.request('POST', `/v3/volumes/${id}/action`, { 'os-attach': { instance_uuid: 'server-1' } });
    const started = Date.now();
    const res = await t.request('DELETE', `/v3/volumes/${id}`, undefined, wait(1));
    expect(res.status).toBe(400);
    expect(res.body.badRequest).toMatchObject({ status: 'in-use', event: 'DELETE' });
    expect(Date.now() - started).toBeGreaterThanOrEqual(900);
    // Not worth waiting for: a missing volume is 404 at once.
    const missing = await t.request('DELETE', '/v3/volumes/00000000-0000-4000-8000-000000000999', undefined, wait(5));
    expect(missing.status).toBe(404);
  });

  it('waits on the resource that refused: a snapshot of a volume still being created', async () => {
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const res = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: created.body.volume.id } }, wait(20));
    expect(res.status).toBe(202);
    expect(res.body.snapshot.status).toBe('creating');
  });

  it('keeps arrival order across two API nodes on one database', async () => {
    const enforcer = new Enforcer();
    const other = await build({ sql: t.db.sql, enforcer, driver: new FakeDriver(), auth: { mode: 'noauth', defaultProject: 'admin' } });
    await other.ready();
    try {
      const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
      const id = created.body.volume.id;
      await waitStatus(t, 'volumes', id, 'available');
      expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reserve': null })).status).toBe(202);
      const nodes = [t.app, other];
      const pending: Promise<number>[] = [];
      for (const [i, size] of [2, 3, 4, 5].entries()) {
        const node = nodes[i % 2]!;
        pending.push(
          node
            .inject({
              method: 'POST',
              url: `/v3/volumes/${id}/action`,
              headers: { ...HEADERS, ...wait(30) },
              payload: { 'os-extend': { new_size: size } },
            })
            .then((r) => r.statusCode),
        );
        await queued(id, pending.length);
      }
      expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-unreserve': null })).status).toBe(202);
      expect(await Promise.all(pending)).toEqual([202, 202, 202, 202]);
      expect((await waitStatus(t, 'volumes', id, 'available')).size).toBe(5);
    } finally {
      await other.close();
    }
  });

  it('passes a waiter whose process died: its lease runs out, it no longer holds the head of the queue', async () => {
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const id = created.body.volume.id;
    // A waiter that came first, with a minute left, from a process that is
    // gone: nobody renews it and nobody will remove it.
    await t.db.sql`
      INSERT INTO waiters (resource_type, resource_id, deadline, alive_until)
      VALUES ('volume', ${id}, now() + interval '60 seconds', now() + ${`${WAITER_LEASE_MS} milliseconds`}::interval)`;
    const res = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }, wait(15));
    // Behind a live head it would have waited 15 s and been refused.
    expect(res.status).toBe(202);
    await waitStatus(t, 'volumes', id, 'available');
    await t.db.sql`DELETE FROM waiters WHERE resource_id = ${id}`;
  });

  it('tries again only when the row moved where the refused event may go, not at every step', async () => {
    const ids: string[] = [];
    for (let i = 0; i < 2; i++) ids.push((await t.request('POST', '/v3/volumes', { volume: { size: 1 } })).body.volume.id);
    for (const id of ids) await waitStatus(t, 'volumes', id, 'available');
    // Waiters of our own, on their own Waits, so that their attempts are counted and the
    // notifications they see are the test's: `busy` for DELETE until the test lets them through.
    const waits = new Waits(t.db.sql);
    await waits.start();
    const open = new Set<string>();
    const attempts = new Map(ids.map((id) => [id, 0]));
    const waiter = (id: string) =>
      waits.attempt(20, async () => {
        attempts.set(id, attempts.get(id)! + 1);
        if (open.has(id)) return 'let in';
        throw new ApiError('VolumeIsBusy', { reason: 'test' }, { refusal: { kind: 'busy', ref: { type: 'volume', id }, event: 'DELETE' } });
      });
    const notify = (payload: string) => t.db.sql`SELECT pg_notify('volstate_state', ${payload})`;
    const [a, b] = ids as [string, string];
    try {
      const waitingA = waiter(a);
      const waitingB = waiter(b);
      await queued(a, 1);
      await queued(b, 1);
      // Each: the first attempt, and the look once at once after joining the queue.
      await eventually(async () => (attempts.get(a) === 2 && attempts.get(b) === 2 ? true : undefined), 10_000, 'two attempts each');
      // Three steps of a volume being created: DELETE has no transition from any of them.
      for (const state of ['creating.db', 'creating.scheduling', 'creating.backend']) await notify(`volume:${a}:${state}`);
      // Then b is at rest and let through. Notifications arrive in order and wake synchronously:
      // had any of a's woken a, its attempt would have begun before b's.
      open.add(b);
      await notify(`volume:${b}:available`);
      expect(await waitingB).toBe('let in');
      expect(attempts.get(b)).toBe(3);
      expect(attempts.get(a)).toBe(2);
      // A notification without a state (a waiter left the queue) wakes every waiter of the row.
      open.add(a);
      await notify(`volume:${a}`);
      expect(await waitingA).toBe('let in');
      expect(attempts.get(a)).toBe(3);
    } finally {
      await waits.stop();
    }
  });

  it('after joining the queue, looks at the row and does not try again while its event has no transition from there', async () => {
    // A volume being created (a fixture row: no worker will move it but the test).
    const id = await putRow(t.db.sql, MODELS.volume, 'creating.backend', {
      ...(MODELS.volume.machine.config.context as Record<string, unknown>),
      size: 1,
    });
    // The waiter's looks (db/waiters.ts headOf), counted as they complete.
    let looks = 0;
    const sql = new Proxy(t.db.sql, {
      apply(target, self, args: unknown[]) {
        const q = Reflect.apply(target, self, args) as Promise<unknown>;
        if (Array.isArray(args[0]) && args[0].join('').includes('AS head'))
          q.then(
            () => looks++,
            () => {},
          );
        return q;
      },
    });
    const waits = new Waits(sql);
    await waits.start();
    let attempts = 0;
    let open = false;
    try {
      const waiting = waits.attempt(20, async () => {
        attempts++;
        if (open) return 'let in';
        throw new ApiError('VolumeIsBusy', { reason: 'test' }, { refusal: { kind: 'busy', ref: { type: 'volume', id }, event: 'DELETE' } });
      });
      await eventually(async () => (looks >= 1 ? true : undefined), 10_000, 'the look after joining');
      await new Promise((r) => setImmediate(r)); // what the look decided has run
      // The refusal, and no second try: the row is still in `creating.backend`, where DELETE has no transition.
      expect(attempts).toBe(1);
      open = true;
      await t.db.sql`UPDATE resource_states SET state = 'available' WHERE resource_type = 'volume' AND resource_id = ${id}`;
      await t.db.sql`SELECT pg_notify('volstate_state', ${`volume:${id}:available`})`;
      expect(await waiting).toBe('let in');
      expect(attempts).toBe(2);
    } finally {
      await waits.stop();
    }
  });

  it('lets the waiters a live process holds outlast the lease', async () => {
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const id = created.body.volume.id;
    await waitStatus(t, 'volumes', id, 'available');
    await t.request('POST', `/v3/volumes/${id}/action`, { 'os-attach': { instance_uuid: 'server-1' } });
    const queued = t.request('DELETE', `/v3/volumes/${id}`, undefined, wait(3 * (WAITER_LEASE_MS / 1000)));
    await new Promise((r) => setTimeout(r, 2 * WAITER_LEASE_MS));
    const [row] = await t.db.sql`SELECT alive_until > now() AS alive FROM waiters WHERE resource_id = ${id}`;
    expect(row?.alive).toBe(true);
    await t.request('POST', `/v3/volumes/${id}/action`, { 'os-detach': {} });
    expect((await queued).status).toBe(202);
  });
});
