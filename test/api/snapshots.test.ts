/**
 * Snapshots through the API: a snapshot holds its volume (a reader while
 * being taken, a dependent while it exists), and the volume's refusals
 * say so.
 */
import { describe, expect, it } from 'vitest';
import { availableVolume, eventually, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp();

async function snapshotOf(volumeId: string, extra: Record<string, unknown> = {}) {
  const res = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: volumeId, name: 's', ...extra } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.snapshot.id as string;
}

describe('snapshots', () => {
  it('are taken (202 creating → available) with the size of their volume', async () => {
    const volumeId = await availableVolume(t, 3);
    const res = await t.request('POST', '/v3/snapshots', {
      snapshot: { volume_id: volumeId, name: 'snap', description: 'd', metadata: { a: 'b' } },
    });
    expect(res.status).toBe(202);
    expect(res.body.snapshot).toMatchObject({ status: 'creating', size: 3, volume_id: volumeId, name: 'snap', metadata: { a: 'b' } });
    const shown = await waitStatus(t, 'snapshots', res.body.snapshot.id, 'available');
    expect(shown).toMatchObject({ 'os-extended-snapshot-attributes:progress': '100%', size: 3 });
    const list = await t.request('GET', `/v3/snapshots/detail?volume_id=${volumeId}`);
    expect(list.body.snapshots.map((s: { id: string }) => s.id)).toEqual([res.body.snapshot.id]);
  });

  it('block deleting their volume with 400 "has snapshots", until they are deleted', async () => {
    const volumeId = await availableVolume(t);
    const snapId = await snapshotOf(volumeId);
    await waitStatus(t, 'snapshots', snapId, 'available');
    const refused = await t.request('DELETE', `/v3/volumes/${volumeId}`);
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest).toMatchObject({ type: 'InvalidVolume', status: 'available', event: 'DELETE' });
    expect(refused.body.badRequest.message).toMatch(/it has snapshots/);
    // Force delete does not skip this either (as in Cinder).
    expect((await t.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-force_delete': {} })).status).toBe(400);

    expect((await t.request('DELETE', `/v3/snapshots/${snapId}`)).status).toBe(202);
    await waitStatus(t, 'snapshots', snapId, 'gone');
    expect((await t.request('DELETE', `/v3/volumes/${volumeId}`)).status).toBe(202);
    await waitStatus(t, 'volumes', volumeId, 'gone');
    const [row] = await t.db.sql`SELECT count(*)::int AS n FROM leases WHERE source_id = ${volumeId}`;
    expect(row!.n).toBe(0);
  });

  it('are refused for a missing volume (404) and with force=false at 3.66 (400)', async () => {
    const missing = '00000000-0000-4000-8000-00000000abcd';
    const res = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: missing } });
    expect(res).toMatchObject({ status: 404, body: { itemNotFound: { message: `Volume ${missing} could not be found.` } } });
    expect((await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: 'nope' } })).status).toBe(404);
    expect((await t.request('POST', '/v3/snapshots', { snapshot: {} })).status).toBe(400);
    const volumeId = await availableVolume(t);
    const forced = await t.request(
      'POST',
      '/v3/snapshots',
      { snapshot: { volume_id: volumeId, force: false } },
      { 'openstack-api-version': 'volume 3.66' },
    );
    expect(forced.status).toBe(400);
    // Below 3.66 the string "True" is a boolean, as cinderclient sends it.
    expect(
      (
        await t.request(
          'POST',
          '/v3/snapshots',
          { snapshot: { volume_id: volumeId, force: 'True' } },
          { 'openstack-api-version': 'volume 3.65' },
        )
      ).status,
    ).toBe(202);
    expect((await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: volumeId, force: 'perhaps' } })).status).toBe(400);
  });

  it('can be reset and force-deleted by an admin; a bad status is refused', async () => {
    const volumeId = await availableVolume(t);
    const snapId = await snapshotOf(volumeId);
    await waitStatus(t, 'snapshots', snapId, 'available');
    const bogus = await t.request('POST', `/v3/snapshots/${snapId}/action`, { 'os-reset_status': { status: 'bogus' } });
    expect(bogus.status).toBe(400);
    expect((await t.request('POST', `/v3/snapshots/${snapId}/action`, { 'os-reset_status': { status: 'error' } })).status).toBe(202);
    await waitStatus(t, 'snapshots', snapId, 'error');
    expect((await t.request('POST', `/v3/snapshots/${snapId}/action`, { 'os-force_delete': null })).status).toBe(202);
    await waitStatus(t, 'snapshots', snapId, 'gone');
    expect((await t.request('DELETE', `/v3/volumes/${volumeId}`)).status).toBe(202);
  });

  it('park a reset to creating or deleting; os-update_snapshot_status ends a parked creating as reported', async () => {
    const volumeId = await availableVolume(t);
    const snapId = await snapshotOf(volumeId);
    await waitStatus(t, 'snapshots', snapId, 'available');
    const action = (body: unknown) => t.request('POST', `/v3/snapshots/${snapId}/action`, body);
    // No worker-owned snapshot is reported on: only a parked one.
    expect((await action({ 'os-update_snapshot_status': { status: 'error', progress: '80%' } })).status).toBe(400);
    for (const status of ['deleting', 'creating']) {
      expect((await action({ 'os-reset_status': { status } })).status).toBe(202);
      await t.worker!.idle();
      const get = await t.request('GET', `/v3/snapshots/${snapId}`);
      expect(get.body.snapshot.status).toBe(status);
      expect(get.headers['volstate-state']).toBe(`${status}.parked`);
    }
    expect((await action({ 'os-update_snapshot_status': { status: 'deleted' } })).status).toBe(400);
    expect((await action({ 'os-update_snapshot_status': { status: 'error', progress: 'most' } })).status).toBe(400);
    expect((await action({ 'os-update_snapshot_status': { status: 'error', progress: '80%' } })).status).toBe(202);
    const ended = await t.request('GET', `/v3/snapshots/${snapId}`);
    expect(ended.body.snapshot).toMatchObject({ status: 'error', 'os-extended-snapshot-attributes:progress': '80%' });
    expect((await action({ 'os-force_delete': {} })).status).toBe(202);
    await waitStatus(t, 'snapshots', snapId, 'gone');
  });
});

describe('snapshots and busy volumes, with no worker running', () => {
  const idle = useApp({ worker: false });

  it('refuse snapshots of a volume still being created (409 VolumeIsBusy, Retry-After)', async () => {
    const created = await idle.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const res = await idle.request('POST', '/v3/snapshots', { snapshot: { volume_id: created.body.volume.id } });
    expect(res.status).toBe(409);
    expect(res.headers['retry-after']).toBe('1');
    expect(res.body.conflictingRequest).toMatchObject({
      code: 409,
      type: 'VolumeIsBusy',
      status: 'creating',
      state: 'creating.db',
      event: 'SNAPSHOT_BEGIN',
    });
    expect(res.body.conflictingRequest.message).toMatch(/^VolumeIsBusy: cannot take a snapshot of volume /);
    const [row] = await idle.db.sql`SELECT count(*)::int AS n FROM snapshots WHERE volume_id = ${created.body.volume.id}`;
    expect(row!.n).toBe(0);
  });

  it('give the volume back its reader when an admin resets a snapshot stuck in creating', async () => {
    // A volume made available by hand (no worker here), and a snapshot nobody takes.
    const created = await idle.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const volumeId = created.body.volume.id as string;
    expect((await idle.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-reset_status': { status: 'available' } })).status).toBe(202);
    const snap = await idle.request('POST', '/v3/snapshots', { snapshot: { volume_id: volumeId } });
    expect(snap.status).toBe(202);
    const readers = async () => (await idle.db.sql`SELECT readers, dependents FROM resource_states WHERE resource_id = ${volumeId}`)[0];
    expect(await readers()).toEqual({ readers: 1, dependents: 1 });
    // While read, the volume cannot be extended: busy.
    const extend = await idle.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-extend': { new_size: 2 } });
    expect(extend.status).toBe(409);

    expect(
      (await idle.request('POST', `/v3/snapshots/${snap.body.snapshot.id}/action`, { 'os-reset_status': { status: 'error' } })).status,
    ).toBe(202);
    expect(await readers()).toEqual({ readers: 0, dependents: 1 });
    expect((await idle.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-extend': { new_size: 2 } })).status).toBe(202);
    const log = await idle.db.sql`SELECT event FROM state_transitions WHERE resource_id = ${volumeId} ORDER BY version`;
    expect(log.map((r) => r.event)).toEqual(['CREATE', 'RESET_STATUS', 'SNAPSHOT_BEGIN', 'READ_END', 'EXTEND']);
  });
});

describe('snapshot deletion completes the bookkeeping', () => {
  it('drops the dependent when the backend deletes the snapshot', async () => {
    const volumeId = await availableVolume(t);
    const snapId = await snapshotOf(volumeId);
    await waitStatus(t, 'snapshots', snapId, 'available');
    await t.request('DELETE', `/v3/snapshots/${snapId}`);
    await eventually(async () => {
      const [row] = await t.db.sql`SELECT readers, dependents FROM resource_states WHERE resource_id = ${volumeId}`;
      return row!.dependents === 0 && row!.readers === 0 ? row : undefined;
    });
    expect(t.backend.snapshots.has(snapId)).toBe(false);
  });
});
