/**
 * Volume transfers: the offer is a state of the volume (awaiting-transfer),
 * the accept moves the volume, its snapshots and their quota usage to the
 * accepting project in one transaction, or changes nothing. Races run for
 * real (concurrent requests on a pool of connections); after each, the
 * independent checker looks at the quota usage.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatReport } from '../../src/check/history.ts';
import { useApp, waitStatus } from '../helpers/app.ts';

const tokens = new Map([
  ['alice-token', { user: 'alice', project: 'aaaaaaaa00000000000000000000000a', roles: ['member'] }],
  ['bob-token', { user: 'bob', project: 'bbbbbbbb00000000000000000000000b', roles: ['member'] }],
  ['carol-token', { user: 'carol', project: 'cccccccc00000000000000000000000c', roles: ['member'] }],
  ['root-token', { user: 'root', project: 'ops', roles: ['admin'] }],
]);
const ALICE = 'aaaaaaaa00000000000000000000000a';
const BOB = 'bbbbbbbb00000000000000000000000b';
const CAROL = 'cccccccc00000000000000000000000c';
const t = useApp({ latencyMs: 2, auth: { mode: 'tokens', defaultProject: 'ops', tokens } });
const as = (token: string, mv = '3.70') => ({ 'x-auth-token': token, 'openstack-api-version': `volume ${mv}` });

async function volumeOf(token: string, size = 1, extra: Record<string, unknown> = {}) {
  const res = await t.request('POST', '/v3/volumes', { volume: { size, ...extra } }, as(token));
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  await waitStatus(t, 'volumes', res.body.volume.id, 'available', 10_000, as(token));
  return res.body.volume.id as string;
}

async function snapshotOf(token: string, volumeId: string) {
  const res = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: volumeId } }, as(token));
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  await waitStatus(t, 'snapshots', res.body.snapshot.id, 'available', 10_000, as(token));
  return res.body.snapshot.id as string;
}

async function offer(token: string, volumeId: string, extra: Record<string, unknown> = {}) {
  const res = await t.request('POST', '/v3/volume-transfers', { transfer: { volume_id: volumeId, name: 'gift', ...extra } }, as(token));
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.transfer as { id: string; auth_key: string };
}

async function usage(project: string) {
  const rows = await t.db.sql<
    { resource: string; in_use: number }[]
  >`SELECT resource, sum(in_use)::int AS in_use FROM quota_usages WHERE project_id = ${project} GROUP BY resource HAVING sum(in_use) <> 0 ORDER BY resource`;
  return Object.fromEntries(rows.map((r) => [r.resource, r.in_use]));
}

async function quotaViolations() {
  const report = await checkHistory(t.db.sql, { atRest: true });
  const quota = report.violations.filter((v) => v.kind === 'quota-usage');
  expect(quota, formatReport(report)).toEqual([]);
}

describe('volume transfers', () => {
  it('offer, show, list, accept: the volume, its snapshots and their usage move to the accepting project', async () => {
    const vol = await volumeOf('alice-token', 2);
    const snap = await snapshotOf('alice-token', vol);
    const before = { alice: await usage(ALICE), bob: await usage(BOB) };
    const made = await offer('alice-token', vol);
    expect(made.auth_key).toMatch(/^[0-9a-f]{16}$/);
    expect(Object.keys(made).sort()).toEqual(
      [
        'accepted',
        'auth_key',
        'created_at',
        'destination_project_id',
        'id',
        'links',
        'name',
        'no_snapshots',
        'source_project_id',
        'volume_id',
      ].sort(),
    );
    expect(made).toMatchObject({
      volume_id: vol,
      name: 'gift',
      no_snapshots: false,
      source_project_id: ALICE,
      destination_project_id: null,
      accepted: false,
    });
    const offered = await t.request('GET', `/v3/volumes/${vol}`, undefined, as('alice-token'));
    expect(offered.body.volume.status).toBe('awaiting-transfer');
    expect(offered.headers['volstate-state']).toBe('awaiting-transfer.offered');

    // Nothing else happens to an offered volume.
    const del = await t.request('DELETE', `/v3/volumes/${vol}`, undefined, as('alice-token'));
    expect(del.status).toBe(400);
    expect(del.body.badRequest.message).toContain('awaiting-transfer');
    expect((await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: vol } }, as('alice-token'))).status).toBe(400);
    expect((await t.request('POST', `/v3/volumes/${vol}/action`, { 'os-extend': { new_size: 3 } }, as('alice-token'))).status).toBe(400);
    // One offer at a time.
    expect((await t.request('POST', '/v3/volume-transfers', { transfer: { volume_id: vol } }, as('alice-token'))).status).toBe(400);

    // The donor sees it; another project does not, but may accept it with the key.
    expect((await t.request('GET', `/v3/volume-transfers/${made.id}`, undefined, as('alice-token'))).body.transfer.volume_id).toBe(vol);
    expect((await t.request('GET', `/v3/volume-transfers/${made.id}`, undefined, as('bob-token'))).status).toBe(404);
    expect(
      (await t.request('GET', '/v3/volume-transfers', undefined, as('alice-token'))).body.transfers.map((x: { id: string }) => x.id),
    ).toContain(made.id);
    expect((await t.request('GET', '/v3/volume-transfers/detail', undefined, as('bob-token'))).body.transfers).toEqual([]);

    const wrong = await t.request(
      'POST',
      `/v3/volume-transfers/${made.id}/accept`,
      { accept: { auth_key: '0000000000000000' } },
      as('bob-token'),
    );
    expect(wrong.status).toBe(400);
    expect(wrong.body.badRequest.message).toContain('invalid auth key');
    const accepted = await t.request(
      'POST',
      `/v3/volume-transfers/${made.id}/accept`,
      { accept: { auth_key: made.auth_key } },
      as('bob-token'),
    );
    expect(accepted.status, JSON.stringify(accepted.body)).toBe(202);
    expect(Object.keys(accepted.body.transfer).sort()).toEqual(['id', 'links', 'name', 'volume_id']);

    const mine = (await t.request('GET', `/v3/volumes/${vol}`, undefined, as('bob-token'))).body.volume;
    expect(mine).toMatchObject({ status: 'available', user_id: 'bob' });
    expect((await t.request('GET', `/v3/volumes/${vol}`, undefined, as('root-token'))).body.volume['os-vol-tenant-attr:tenant_id']).toBe(
      BOB,
    );
    expect((await t.request('GET', `/v3/volumes/${vol}`, undefined, as('alice-token'))).status).toBe(404);
    expect((await t.request('GET', `/v3/snapshots/${snap}`, undefined, as('bob-token'))).body.snapshot.status).toBe('available');
    expect((await t.request('GET', `/v3/volume-transfers/${made.id}`, undefined, as('alice-token'))).status).toBe(404);
    // Every count, per-type ones too, moved whole.
    const after = { alice: await usage(ALICE), bob: await usage(BOB) };
    expect(Object.keys(before.alice).length).toBeGreaterThan(3);
    expect(after.bob).toEqual(before.alice);
    expect(after.alice).toEqual(before.bob);
    await quotaViolations();
    // The history says who offered and who accepted.
    const history = (await t.request('GET', `/v3/volumes/${vol}/transitions`, undefined, as('bob-token'))).body.transitions as {
      event: string;
      actor: string;
    }[];
    expect(history.filter((h) => h.event.startsWith('TRANSFER_')).map((h) => [h.event, h.actor])).toEqual([
      ['TRANSFER_OFFER', `alice:${ALICE}`],
      ['TRANSFER_ACCEPT', `bob:${BOB}`],
    ]);
  });

  it('cancel: the volume is available to its owner again; a reset ends an offer too', async () => {
    const vol = await volumeOf('alice-token');
    const first = await offer('alice-token', vol);
    expect((await t.request('DELETE', `/v3/volume-transfers/${first.id}`, undefined, as('bob-token'))).status).toBe(404);
    expect((await t.request('DELETE', `/v3/volume-transfers/${first.id}`, undefined, as('alice-token'))).status).toBe(202);
    await waitStatus(t, 'volumes', vol, 'available', 1_000, as('alice-token'));
    const gone = await t.request(
      'POST',
      `/v3/volume-transfers/${first.id}/accept`,
      { accept: { auth_key: first.auth_key } },
      as('bob-token'),
    );
    expect(gone.status).toBe(404);

    const second = await offer('alice-token', vol);
    expect(
      (await t.request('POST', `/v3/volumes/${vol}/action`, { 'os-reset_status': { status: 'available' } }, as('root-token'))).status,
    ).toBe(202);
    expect((await t.request('GET', `/v3/volume-transfers/${second.id}`, undefined, as('alice-token'))).status).toBe(404);
    const late = await t.request(
      'POST',
      `/v3/volume-transfers/${second.id}/accept`,
      { accept: { auth_key: second.auth_key } },
      as('bob-token'),
    );
    expect(late.status).toBe(404);
    // An admin's reset to awaiting-transfer offers nothing: nobody can accept a parked volume.
    expect(
      (await t.request('POST', `/v3/volumes/${vol}/action`, { 'os-reset_status': { status: 'awaiting-transfer' } }, as('root-token')))
        .status,
    ).toBe(202);
    expect((await t.request('GET', '/v3/volume-transfers', undefined, as('alice-token'))).body.transfers).toEqual([]);
    expect((await t.request('GET', `/v3/volumes/${vol}`, undefined, as('alice-token'))).body.volume.owner).toBeUndefined();
  });

  it('snapshots: all must be available to go along; no_snapshots (3.55) leaves them with the donor', async () => {
    const vol = await volumeOf('alice-token');
    const snap = await snapshotOf('alice-token', vol);
    expect(
      (await t.request('POST', `/v3/snapshots/${snap}/action`, { 'os-reset_status': { status: 'error' } }, as('root-token'))).status,
    ).toBe(202);
    const refused = await t.request('POST', '/v3/volume-transfers', { transfer: { volume_id: vol } }, as('alice-token'));
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toContain(`snapshot ${snap} is error`);
    expect((await t.request('GET', `/v3/volumes/${vol}`, undefined, as('alice-token'))).body.volume.status).toBe('available');

    const made = await offer('alice-token', vol, { no_snapshots: true });
    expect(made).toMatchObject({ no_snapshots: true });
    expect(
      (await t.request('POST', `/v3/volume-transfers/${made.id}/accept`, { accept: { auth_key: made.auth_key } }, as('bob-token'))).status,
    ).toBe(202);
    expect((await t.request('GET', `/v3/snapshots/${snap}`, undefined, as('alice-token'))).status).toBe(200);
    expect((await t.request('GET', `/v3/volumes/${vol}`, undefined, as('bob-token'))).status).toBe(200);
    await quotaViolations();
  });

  it("over the receiver's quota: 413 and nothing changes", async () => {
    const vol = await volumeOf('alice-token', 3);
    const made = await offer('alice-token', vol);
    expect((await t.request('PUT', `/v3/os-quota-sets/${CAROL}`, { quota_set: { gigabytes: 2 } }, as('root-token'))).status).toBe(200);
    const before = { alice: await usage(ALICE), carol: await usage(CAROL) };
    const res = await t.request(
      'POST',
      `/v3/volume-transfers/${made.id}/accept`,
      { accept: { auth_key: made.auth_key } },
      as('carol-token'),
    );
    expect(res.status).toBe(413);
    expect(res.body.overLimit.message).toBe(
      'Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 2G and 0G has been consumed.',
    );
    expect({ alice: await usage(ALICE), carol: await usage(CAROL) }).toEqual(before);
    expect((await t.request('GET', `/v3/volumes/${vol}`, undefined, as('alice-token'))).body.volume.status).toBe('awaiting-transfer');
    expect((await t.request('GET', `/v3/volume-transfers/${made.id}`, undefined, as('alice-token'))).status).toBe(200);
  });

  it('10 concurrent accepts of one offer: exactly one wins, the usage moves once (5 rounds)', async () => {
    expect((await t.request('DELETE', `/v3/os-quota-sets/${CAROL}`, undefined, as('root-token'))).status).toBe(200);
    for (let round = 0; round < 5; round++) {
      const vol = await volumeOf('alice-token', 1);
      await snapshotOf('alice-token', vol);
      const made = await offer('alice-token', vol);
      const takers = ['bob-token', 'carol-token'];
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          t.request('POST', `/v3/volume-transfers/${made.id}/accept`, { accept: { auth_key: made.auth_key } }, as(takers[i % 2]!)),
        ),
      );
      expect(
        results.filter((r) => r.status === 202),
        `round ${round}`,
      ).toHaveLength(1);
      for (const r of results.filter((x) => x.status !== 202)) expect(r.status).toBe(404);
      await quotaViolations();
    }
  });

  it('accept racing the deletion of a snapshot: the usage lands where the snapshot ends (10 rounds)', async () => {
    for (let round = 0; round < 10; round++) {
      const vol = await volumeOf('alice-token', 1);
      const snaps = [await snapshotOf('alice-token', vol), await snapshotOf('alice-token', vol)];
      const made = await offer('alice-token', vol);
      const [accept, ...deletes] = await Promise.all([
        t.request('POST', `/v3/volume-transfers/${made.id}/accept`, { accept: { auth_key: made.auth_key } }, as('bob-token')),
        ...snaps.map((s) => t.request('DELETE', `/v3/snapshots/${s}`, undefined, as('root-token'))),
      ]);
      expect(accept.status).toBe(202);
      for (const d of deletes) expect(d.status).toBe(202);
      for (const s of snaps) await waitStatus(t, 'snapshots', s, 'gone', 10_000, as('root-token'));
      await quotaViolations();
    }
  });

  it('both paths, by microversion: os-volume-transfer always, volume-transfers from 3.55', async () => {
    const vol = await volumeOf('alice-token');
    expect((await t.request('POST', '/v3/volume-transfers', { transfer: { volume_id: vol } }, as('alice-token', '3.54'))).status).toBe(404);
    const old = await t.request('POST', '/v3/os-volume-transfer', { transfer: { volume_id: vol, name: null } }, as('alice-token', '3.0'));
    expect(old.status).toBe(202);
    expect(Object.keys(old.body.transfer).sort()).toEqual(['auth_key', 'created_at', 'id', 'links', 'name', 'volume_id']);
    expect(old.body.transfer.links[0].href).toContain(`/os-volume-transfer/${old.body.transfer.id}`);
    const list = await t.request('GET', '/v3/os-volume-transfer', undefined, as('alice-token', '3.0'));
    expect(list.body.transfers.filter((x: { volume_id: string }) => x.volume_id === vol)).toEqual([
      { id: old.body.transfer.id, name: null, volume_id: vol, links: old.body.transfer.links },
    ]);
    const bad = await t.request('POST', '/v3/os-volume-transfer', { transfer: { volume_id: 'nope' } }, as('alice-token'));
    expect(bad.status).toBe(400);
    expect((await t.request('POST', `/v3/os-volume-transfer/${old.body.transfer.id}/accept`, { accept: {} }, as('bob-token'))).status).toBe(
      400,
    );
    expect((await t.request('GET', '/v3/os-volume-transfer/not-a-uuid', undefined, as('alice-token'))).status).toBe(404);
  });
});
