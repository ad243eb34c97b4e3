/**
 * Races over real HTTP (the app listening on loopback, 20 requests in
 * flight on 20 sockets), each round repeated: the machine lets exactly one
 * request win, whatever the interleaving, and the losers are told why.
 *
 * Real Cinder checks the extend size on a stale read and was seen to
 * accept two of twenty identical concurrent extends, leaking quota.
 */
import { describe, expect, it } from 'vitest';
import { availableVolume, HEADERS, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ listen: true, latencyMs: 20, concurrency: 16 });
const CLIENTS = 20;
const ROUNDS = 12;

async function burst(method: string, path: string, body?: unknown) {
  const url = `${t.url}${path}`;
  const responses = await Promise.all(
    Array.from({ length: CLIENTS }, () =>
      fetch(url, { method, headers: HEADERS, body: body === undefined ? undefined : JSON.stringify(body) }).then(async (r) => ({
        status: r.status,
        body: (r.status === 202 ? null : await r.json()) as any,
      })),
    ),
  );
  const count = (status: number) => responses.filter((r) => r.status === status).length;
  return { responses, count };
}

describe('over real HTTP', () => {
  it('creates, extends and deletes a volume, as a client polling status would', async () => {
    const call = async (method: string, path: string, body?: unknown) => {
      const r = await fetch(`${t.url}${path}`, { method, headers: HEADERS, body: body === undefined ? undefined : JSON.stringify(body) });
      return { status: r.status, body: r.status === 202 && method !== 'POST' ? null : ((await r.json().catch(() => null)) as any) };
    };
    const poll = async (id: string, until: (v: any) => boolean) => {
      for (let i = 0; i < 500; i++) {
        const r = await call('GET', `/v3/volumes/${id}`);
        if (until(r)) return r;
        await new Promise((res) => setTimeout(res, 10));
      }
      throw new Error(`volume ${id} never got there`);
    };
    const created = await call('POST', '/v3/volumes', { volume: { size: 1, name: 'http' } });
    expect(created).toMatchObject({ status: 202, body: { volume: { status: 'creating' } } });
    const id = created.body.volume.id;
    await poll(id, (r) => r.body.volume.status === 'available');
    expect((await call('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } })).status).toBe(202);
    await poll(id, (r) => r.body.volume.status === 'available' && r.body.volume.size === 2);
    expect((await call('DELETE', `/v3/volumes/${id}`)).status).toBe(202);
    await poll(id, (r) => r.status === 404);
  });
});

describe(`${CLIENTS} concurrent HTTP requests on one volume, ${ROUNDS} rounds`, () => {
  it('DELETE: exactly one 202; the others 409 VolumeIsBusy (deleting) or 404 once it is gone', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = await availableVolume(t);
      const { responses, count } = await burst('DELETE', `/v3/volumes/${id}`);
      expect(count(202)).toBe(1);
      expect(count(202) + count(409) + count(404)).toBe(CLIENTS);
      for (const r of responses.filter((r) => r.status === 409)) {
        expect(r.body.conflictingRequest).toMatchObject({ type: 'VolumeIsBusy', status: 'deleting' });
      }
      await waitStatus(t, 'volumes', id, 'gone');
      const deletes = await t.db.sql`SELECT count(*)::int AS n FROM state_transitions WHERE resource_id = ${id} AND event = 'DELETE'`;
      expect(deletes[0]!.n).toBe(1);
    }
  });

  it('identical os-extend: exactly one 202, and the size grows by exactly one', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = await availableVolume(t, 2);
      const { responses, count } = await burst('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 3 } });
      expect(count(202)).toBe(1);
      // The rest: busy while the extend is in flight, invalid once it is done (3 is no longer larger).
      expect(count(202) + count(409) + count(400)).toBe(CLIENTS);
      for (const r of responses.filter((r) => r.status === 400))
        expect(r.body.badRequest).toMatchObject({ type: 'InvalidVolume', event: 'EXTEND' });
      const v = await waitStatus(t, 'volumes', id, 'available');
      expect(v).toMatchObject({ size: 3 });
      expect(t.backend.volumes.get(id)).toBe(3);
    }
  });
});
