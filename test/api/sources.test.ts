/**
 * Volumes made from other resources (clones, from snapshots), reverting to
 * a snapshot, and cascade deletes: every operation that holds or changes
 * two resources does so in one transaction, or not at all.
 */
import { describe, expect, it } from 'vitest';
import { availableVolume, eventually, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ latencyMs: 5 });

async function snapshotOf(volumeId: string) {
  const res = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: volumeId } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  await waitStatus(t, 'snapshots', res.body.snapshot.id, 'available');
  return res.body.snapshot.id as string;
}

const stateOf = async (id: string) =>
  (await t.db.sql`SELECT state, readers, dependents, size FROM resource_states WHERE resource_id = ${id}`)[0];

describe('clones', () => {
  it('take the source size by default, hold the source while created, and record it', async () => {
    const source = await availableVolume(t, 3);
    const res = await t.request('POST', '/v3/volumes', { volume: { source_volid: source, size: null } });
    expect(res.status).toBe(202);
    expect(res.body.volume).toMatchObject({ source_volid: source, size: 3, status: 'creating' });
    const clone = res.body.volume.id;
    await waitStatus(t, 'volumes', clone, 'available');
    expect(t.backend.origins.get(clone)).toBe(`volume:${source}`);
    expect(await stateOf(source)).toMatchObject({ readers: 0 });
    expect((await t.request('DELETE', `/v3/volumes/${source}`)).status).toBe(202);
  });

  it('may not be smaller than their source (400), and a missing source is 404', async () => {
    const source = await availableVolume(t, 3);
    const small = await t.request('POST', '/v3/volumes', { volume: { source_volid: source, size: 2 } });
    expect(small.status).toBe(400);
    expect(small.body.badRequest.message).toBe(
      "Invalid input received: Volume size '2'GB cannot be smaller than the source volume size 3GB. They must be >= original source volume size.",
    );
    expect(await stateOf(source)).toMatchObject({ readers: 0 });
    expect((await t.request('POST', '/v3/volumes', { volume: { source_volid: '00000000-0000-4000-8000-00000000f00d' } })).status).toBe(404);
    expect((await t.request('POST', '/v3/volumes', { volume: { source_volid: 'x', snapshot_id: null } })).status).toBe(404);
  });
});

describe('volumes from snapshots', () => {
  it('take the snapshot size by default and come from its data', async () => {
    const volumeId = await availableVolume(t, 2);
    const snap = await snapshotOf(volumeId);
    const res = await t.request('POST', '/v3/volumes', { volume: { snapshot_id: snap } });
    expect(res.status).toBe(202);
    expect(res.body.volume).toMatchObject({ snapshot_id: snap, size: 2 });
    await waitStatus(t, 'volumes', res.body.volume.id, 'available');
    expect(t.backend.origins.get(res.body.volume.id)).toBe(`snapshot:${snap}`);
    const small = await t.request('POST', '/v3/volumes', { volume: { snapshot_id: snap, size: 1 } });
    expect(small.body.badRequest.message).toBe(
      "Invalid input received: Volume size '1'GB cannot be smaller than the snapshot size 2GB. They must be >= original snapshot size.",
    );
  });
});

describe('revert to a snapshot (3.40)', () => {
  const revert = (volumeId: string, snapshotId: string, mv = '3.40') =>
    t.request(
      'POST',
      `/v3/volumes/${volumeId}/action`,
      { revert: { snapshot_id: snapshotId } },
      { 'openstack-api-version': `volume ${mv}` },
    );

  it('moves the volume and the snapshot together, and back', async () => {
    const volumeId = await availableVolume(t, 1);
    const snap = await snapshotOf(volumeId);
    expect((await revert(volumeId, snap)).status).toBe(202);
    await waitStatus(t, 'volumes', volumeId, 'available');
    await waitStatus(t, 'snapshots', snap, 'available');
    expect(t.backend.origins.get(volumeId)).toBe(`revert:${snap}`);
    const log = await t.db.sql`
      SELECT resource_type, event, to_state FROM state_transitions
      WHERE (resource_id = ${volumeId} AND event IN ('REVERT', 'REVERTED')) OR (resource_id = ${snap} AND event IN ('RESTORE_BEGIN', 'READ_END'))
      ORDER BY id`;
    expect(log.map((h) => `${h.resource_type} ${h.event} → ${h.to_state}`)).toEqual([
      'snapshot RESTORE_BEGIN → restoring',
      'volume REVERT → reverting.backend',
      'volume REVERTED → available',
      'snapshot READ_END → available',
    ]);
    expect((await revert(volumeId, snap, '3.39')).status).toBe(400);
  });

  it('is refused with nothing changed when the snapshot is not the latest, or not the same size', async () => {
    const volumeId = await availableVolume(t, 1);
    const older = await snapshotOf(volumeId);
    const newer = await snapshotOf(volumeId);
    const before = [await stateOf(volumeId), await stateOf(older)];
    const res = await revert(volumeId, older);
    expect(res.status).toBe(400);
    expect(res.body.badRequest.message).toMatch(/latest snapshot/);
    expect([await stateOf(volumeId), await stateOf(older)]).toEqual(before);

    await t.request('DELETE', `/v3/snapshots/${older}`);
    await waitStatus(t, 'snapshots', older, 'gone');
    await t.request('DELETE', `/v3/snapshots/${newer}`);
    await waitStatus(t, 'snapshots', newer, 'gone');
    const snap = await snapshotOf(volumeId);
    await t.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-extend': { new_size: 2 } });
    await eventually(async () =>
      (await stateOf(volumeId))!.size === 2 && (await stateOf(volumeId))!.state === 'available' ? true : undefined,
    );
    const sized = await revert(volumeId, snap);
    expect(sized.status).toBe(400);
    expect(sized.body.badRequest.message).toMatch(/same size/);
    expect(await stateOf(snap)).toMatchObject({ state: 'available', readers: 0 });
    expect(await stateOf(volumeId)).toMatchObject({ state: 'available' });
  });

  it('refuses a snapshot of another volume', async () => {
    const a = await availableVolume(t);
    const b = await availableVolume(t);
    const snap = await snapshotOf(b);
    expect((await revert(a, snap)).status).toBe(400);
  });
});

describe('cascade delete', () => {
  it('deletes the volume and its snapshots; the volume goes last', async () => {
    const volumeId = await availableVolume(t);
    const snaps = [await snapshotOf(volumeId), await snapshotOf(volumeId)];
    expect((await t.request('DELETE', `/v3/volumes/${volumeId}`)).status).toBe(400);
    expect((await t.request('DELETE', `/v3/volumes/${volumeId}?cascade=True`)).status).toBe(202);
    await waitStatus(t, 'volumes', volumeId, 'gone');
    for (const s of snaps) expect((await t.request('GET', `/v3/snapshots/${s}`)).status).toBe(404);
    const order = await t.db
      .sql`SELECT resource_id FROM state_transitions WHERE event = 'DELETED' AND resource_id IN ${t.db.sql([volumeId, ...snaps])} ORDER BY id`;
    expect(order.at(-1)!.resource_id).toBe(volumeId);
  });

  it('is refused cleanly (nothing changes) when a snapshot cannot be deleted, unless forced', async () => {
    const volumeId = await availableVolume(t);
    const ok = await snapshotOf(volumeId);
    const stuck = await snapshotOf(volumeId);
    await t.request('POST', `/v3/snapshots/${stuck}/action`, { 'os-reset_status': { status: 'error_deleting' } });
    const res = await t.request('DELETE', `/v3/volumes/${volumeId}?cascade=True`);
    expect(res.status).toBe(400);
    expect(res.body.badRequest).toMatchObject({ type: 'InvalidSnapshot', state: 'error_deleting' });
    expect(await stateOf(volumeId)).toMatchObject({ state: 'available' });
    expect(await stateOf(ok)).toMatchObject({ state: 'available' });
    const forced = await t.request('DELETE', `/v3/volumes/${volumeId}?cascade=True&force=True`, undefined, {
      'openstack-api-version': 'volume 3.23',
    });
    expect(forced.status).toBe(202);
    await waitStatus(t, 'volumes', volumeId, 'gone');
  });
});
