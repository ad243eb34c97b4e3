/**
 * Attachments (3.27+) and the legacy attach actions: every step moves the
 * attachment and its volume together, and the volume's status is what its
 * attachments say.
 */
import { describe, expect, it } from 'vitest';
import { availableVolume, eventually, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp();
const CONNECTOR = {
  initiator: 'iqn.1993-08.org.debian:01:abc',
  ip: '10.0.0.2',
  platform: 'x86_64',
  host: 'compute-1',
  os_type: 'linux2',
  multipath: false,
  mountpoint: '/dev/vdb',
};
const SERVER = '4e4b9c1a-8c8e-4a69-9c3f-0e7f2c7a1d10';

const volumeOf = async (id: string) => (await t.request('GET', `/v3/volumes/${id}`)).body.volume;
const counts = async (id: string) =>
  (
    await t.db
      .sql`SELECT att_reserved, att_attaching, att_attached, att_detaching, att_error FROM resource_states WHERE resource_id = ${id}`
  )[0];

describe('the attachments API', () => {
  it('reserve → connect → complete → delete moves the volume available → reserved → attaching → in-use → available', async () => {
    const volumeId = await availableVolume(t);
    const created = await t.request('POST', '/v3/attachments', {
      attachment: { volume_uuid: volumeId, instance_uuid: SERVER, connector: {} },
    });
    expect(created.status).toBe(200);
    expect(created.body.attachment).toMatchObject({
      status: 'reserved',
      instance: SERVER,
      volume_id: volumeId,
      attached_at: '',
      detached_at: '',
      attach_mode: 'null',
      connection_info: {},
    });
    const id = created.body.attachment.id;
    expect((await volumeOf(volumeId)).status).toBe('reserved');

    const updated = await t.request('PUT', `/v3/attachments/${id}`, { attachment: { connector: CONNECTOR } });
    expect(updated.status).toBe(200);
    expect(updated.body.attachment).toMatchObject({
      status: 'attaching',
      attach_mode: 'rw',
      connection_info: { driver_volume_type: 'fake', attachment_id: id, access_mode: 'rw' },
    });
    expect((await volumeOf(volumeId)).status).toBe('attaching');
    expect(t.backend.connections.get(volumeId)?.has('compute-1')).toBe(true);

    const complete = await t.request('POST', `/v3/attachments/${id}/action`, { 'os-complete': null });
    expect(complete.status).toBe(204);
    const inUse = await volumeOf(volumeId);
    expect(inUse.status).toBe('in-use');
    expect(inUse.attachments).toEqual([
      expect.objectContaining({
        id: volumeId,
        attachment_id: id,
        volume_id: volumeId,
        server_id: SERVER,
        host_name: 'compute-1',
        device: '/dev/vdb',
      }),
    ]);
    expect((await t.request('GET', `/v3/attachments/${id}`)).body.attachment.attached_at).not.toBe('');

    // In use: not deletable, not even by force (as Cinder).
    expect((await t.request('DELETE', `/v3/volumes/${volumeId}`)).status).toBe(400);
    const forced = await t.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-force_delete': null });
    expect(forced.status).toBe(400);
    expect(forced.body.badRequest.message).toMatch(/attachments/);

    const removed = await t.request('DELETE', `/v3/attachments/${id}`);
    expect(removed).toMatchObject({ status: 200, body: { attachments: [] } });
    expect(await volumeOf(volumeId)).toMatchObject({ status: 'available', attachments: [] });
    expect(await counts(volumeId)).toEqual({ att_reserved: 0, att_attaching: 0, att_attached: 0, att_detaching: 0, att_error: 0 });
    expect(t.backend.connections.get(volumeId)?.has('compute-1')).toBe(false);
    expect((await t.request('GET', `/v3/attachments/${id}`)).status).toBe(404);
    // The record keeps when it ended (written before the CAS that retires the row).
    const [ended] = await t.db.sql`SELECT detached_at, deleted_at FROM attachments WHERE id = ${id}`;
    expect(ended!.detached_at, 'detached_at').toBeInstanceOf(Date);
    expect(ended!.deleted_at, 'deleted_at').toBeInstanceOf(Date);
    const log = await t.db
      .sql`SELECT event, to_state FROM state_transitions WHERE resource_id = ${volumeId} AND event = 'ATTACHMENTS_CHANGED' ORDER BY version`;
    expect(log.map((h) => h.to_state)).toEqual(['reserved', 'attaching', 'in-use', 'available']);
  });

  it('connects at once when created with a connector, and lists and filters attachments', async () => {
    const volumeId = await availableVolume(t);
    const created = await t.request('POST', '/v3/attachments', {
      attachment: { volume_uuid: volumeId, instance_uuid: SERVER, connector: CONNECTOR, mode: 'ro' },
    });
    expect(created.body.attachment).toMatchObject({ status: 'attaching', attach_mode: 'ro', connection_info: { access_mode: 'ro' } });
    const list = await t.request('GET', `/v3/attachments?volume_id=${volumeId}`);
    expect(list.body.attachments).toEqual([{ id: created.body.attachment.id, status: 'attaching', instance: SERVER, volume_id: volumeId }]);
    const detail = await t.request('GET', `/v3/attachments/detail?instance_id=${SERVER}&volume_id=${volumeId}`);
    expect(detail.body.attachments[0].connection_info.driver_volume_type).toBe('fake');
    expect((await t.request('GET', '/v3/attachments?volume_id=not-a-uuid')).body.attachments).toEqual([]);
  });

  it('completes an attachment made with no connector, or {}, as real Cinder does: the volume goes in-use', async () => {
    for (const connector of [undefined, {}]) {
      const volumeId = await availableVolume(t);
      const a = await t.request('POST', '/v3/attachments', {
        attachment: { volume_uuid: volumeId, instance_uuid: SERVER, ...(connector ? { connector } : {}) },
      });
      expect(a.body.attachment.status).toBe('reserved');
      const id = a.body.attachment.id;
      expect((await t.request('POST', `/v3/attachments/${id}/action`, { 'os-complete': null })).status).toBe(204);
      expect((await t.request('GET', `/v3/attachments/${id}`)).body.attachment).toMatchObject({ status: 'attached' });
      const volume = await volumeOf(volumeId);
      expect(volume.status).toBe('in-use');
      expect(volume.attachments).toEqual([expect.objectContaining({ attachment_id: id, server_id: SERVER, volume_id: volumeId })]);
      expect(await counts(volumeId)).toMatchObject({ att_attached: 1, att_reserved: 0 });
      // Completed once: a second os-complete is refused, naming the state.
      const again = await t.request('POST', `/v3/attachments/${id}/action`, { 'os-complete': null });
      expect(again.status).toBe(400);
      expect(again.body.badRequest).toMatchObject({ type: 'InvalidAttachment', state: 'attached' });
      expect((await t.request('DELETE', `/v3/attachments/${id}`)).status).toBe(200);
      expect((await volumeOf(volumeId)).status).toBe('available');
    }
  });

  it('exists from 3.27, os-complete from 3.44 (404 below, as Cinder)', async () => {
    const old = { 'openstack-api-version': 'volume 3.26' };
    expect((await t.request('GET', '/v3/attachments', undefined, old)).status).toBe(404);
    expect((await t.request('POST', '/v3/attachments', { attachment: {} }, old)).status).toBe(404);
    const volumeId = await availableVolume(t);
    const a = await t.request(
      'POST',
      '/v3/attachments',
      { attachment: { volume_uuid: volumeId, connector: CONNECTOR } },
      { 'openstack-api-version': 'volume 3.43' },
    );
    expect(a.status).toBe(200);
    expect(
      (
        await t.request(
          'POST',
          `/v3/attachments/${a.body.attachment.id}/action`,
          { 'os-complete': {} },
          { 'openstack-api-version': 'volume 3.43' },
        )
      ).status,
    ).toBe(404);
    expect((await t.request('POST', `/v3/attachments/${a.body.attachment.id}/action`, { 'os-complete': {} })).status).toBe(204);
  });

  it('allows one attachment on a plain volume, several on a multiattach one', async () => {
    const plain = await availableVolume(t);
    expect((await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: plain } })).status).toBe(200);
    const second = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: plain } });
    expect(second.status).toBe(400);
    expect(second.body.badRequest.message).toMatch(/attached already and is not multiattach/);
    // The one reason that decided, not every target's count besides.
    expect(second.body.badRequest.message).not.toMatch(/would remain/);

    const multi = await availableVolume(t, 1, { multiattach: true });
    expect((await volumeOf(multi)).multiattach).toBe(true);
    const a = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: multi, connector: CONNECTOR } });
    await t.request('POST', `/v3/attachments/${a.body.attachment.id}/action`, { 'os-complete': null });
    const b = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: multi } });
    expect(b.status).toBe(200);
    // One attached and one reserved: the volume is in-use (attached wins).
    expect((await volumeOf(multi)).status).toBe('in-use');
    await t.request('DELETE', `/v3/attachments/${a.body.attachment.id}`);
    expect((await volumeOf(multi)).status).toBe('reserved');
    await t.request('DELETE', `/v3/attachments/${b.body.attachment.id}`);
    expect((await volumeOf(multi)).status).toBe('available');
  });

  it('refuses bad attachment requests with a clear 4xx and changes nothing', async () => {
    const volumeId = await availableVolume(t);
    const missing = '00000000-0000-4000-8000-0000000000aa';
    expect((await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: missing } })).status).toBe(404);
    expect((await t.request('POST', '/v3/attachments', { attachment: {} })).status).toBe(400);
    expect((await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId, bogus: 1 } })).status).toBe(400);
    expect(
      (
        await t.request(
          'POST',
          '/v3/attachments',
          { attachment: { volume_uuid: volumeId, mode: 'rw' } },
          { 'openstack-api-version': 'volume 3.53' },
        )
      ).status,
    ).toBe(400);
    const notFound = await t.request('GET', '/v3/attachments/xyz');
    expect(notFound).toMatchObject({
      status: 404,
      body: { itemNotFound: { message: 'Volume attachment could not be found with filter: attachment_id = xyz.' } },
    });
    const a = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId } });
    const id = a.body.attachment.id;
    expect((await t.request('PUT', `/v3/attachments/${id}`, { attachment: {} })).status).toBe(400);
    expect((await t.request('PUT', `/v3/attachments/${id}`, { attachment: { connector: CONNECTOR } })).status).toBe(200);
    const again = await t.request('PUT', `/v3/attachments/${id}`, { attachment: { connector: CONNECTOR } });
    expect(again.status).toBe(409);
    expect(again.body.conflictingRequest.message).toMatch(/^Resource conflict: /);
    expect(await counts(volumeId)).toMatchObject({ att_attaching: 1, att_reserved: 0 });
  });

  it('refuses attaching an error volume', async () => {
    const volumeId = await availableVolume(t);
    await t.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-reset_status': { status: 'error' } });
    const res = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId } });
    expect(res.status).toBe(400);
    expect(res.body.badRequest).toMatchObject({ type: 'InvalidVolume', status: 'error' });
  });

  it('puts a failed connection in error_attaching and the volume follows', async () => {
    const volumeId = await availableVolume(t);
    const a = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId } });
    t.faults.failures = { initialize_connection: 1 };
    try {
      const res = await t.request('PUT', `/v3/attachments/${a.body.attachment.id}`, { attachment: { connector: CONNECTOR } });
      expect(res.status).toBe(503);
      expect(res.body.serviceUnavailable.message).toMatch(/storage backend failed/);
    } finally {
      t.faults.failures = {};
    }
    expect((await t.request('GET', `/v3/attachments/${a.body.attachment.id}`)).body.attachment.status).toBe('error_attaching');
    expect(await counts(volumeId)).toMatchObject({ att_reserved: 0, att_error: 1 });
    expect((await volumeOf(volumeId)).status).toBe('available');
    expect((await t.request('DELETE', `/v3/attachments/${a.body.attachment.id}`)).status).toBe(200);
    expect(await counts(volumeId)).toMatchObject({ att_error: 0 });
  });
});

describe('legacy volume actions', () => {
  const act = (id: string, body: unknown) => t.request('POST', `/v3/volumes/${id}/action`, body);

  it('reserve / unreserve, attach / begin_detaching / roll_detaching / detach', async () => {
    const id = await availableVolume(t);
    expect((await act(id, { 'os-reserve': null })).status).toBe(202);
    expect((await volumeOf(id)).status).toBe('attaching');
    expect((await act(id, { 'os-unreserve': {} })).status).toBe(202);
    expect((await volumeOf(id)).status).toBe('available');
    expect((await act(id, { 'os-unreserve': null })).status).toBe(202); // a miss is silent

    expect((await act(id, { 'os-reserve': null })).status).toBe(202);
    expect((await act(id, { 'os-attach': { instance_uuid: SERVER, mountpoint: '/dev/vdc', mode: 'rw' } })).status).toBe(202);
    const attached = await volumeOf(id);
    expect(attached).toMatchObject({ status: 'in-use', attachments: [expect.objectContaining({ server_id: SERVER, device: '/dev/vdc' })] });
    const attachmentId = attached.attachments[0].attachment_id;

    expect((await act(id, { 'os-begin_detaching': null })).status).toBe(202);
    expect((await volumeOf(id)).status).toBe('detaching');
    expect((await act(id, { 'os-roll_detaching': null })).status).toBe(202);
    expect((await volumeOf(id)).status).toBe('in-use');
    expect((await act(id, { 'os-begin_detaching': null })).status).toBe(202);
    expect((await act(id, { 'os-detach': { attachment_id: attachmentId } })).status).toBe(202);
    expect(await volumeOf(id)).toMatchObject({ status: 'available', attachments: [] });

    const notAttached = await act(id, { 'os-begin_detaching': null });
    expect(notAttached.status).toBe(400);
    expect(notAttached.body.badRequest.message).toMatch(/Volume status must be 'in-use' and attach_status must be 'attached' to detach/);
  });

  it('os-attach without a reserve attaches at once; os-detach with no id detaches the only attachment', async () => {
    const id = await availableVolume(t);
    expect((await act(id, { 'os-attach': { host_name: 'baremetal-1', mountpoint: '/dev/sdb' } })).status).toBe(202);
    expect((await volumeOf(id)).status).toBe('in-use');
    expect((await act(id, { 'os-detach': {} })).status).toBe(202);
    expect((await volumeOf(id)).status).toBe('available');
    expect((await act(id, { 'os-attach': {} })).status).toBe(400);
  });

  it('initialize / terminate connection, set_bootable (200), update_readonly_flag (202)', async () => {
    const id = await availableVolume(t);
    const init = await act(id, { 'os-initialize_connection': { connector: CONNECTOR } });
    expect(init).toMatchObject({ status: 200, body: { connection_info: { driver_volume_type: 'fake', data: { volume_id: id } } } });
    expect((await act(id, { 'os-initialize_connection': {} })).status).toBe(400);
    expect((await act(id, { 'os-terminate_connection': { connector: CONNECTOR } })).status).toBe(202);
    expect(t.backend.connections.get(id)?.size ?? 0).toBe(0);

    expect((await act(id, { 'os-set_bootable': { bootable: true } })).status).toBe(200);
    expect((await volumeOf(id)).bootable).toBe('true');
    expect((await act(id, { 'os-set_bootable': { bootable: 'maybe' } })).status).toBe(400);

    expect((await act(id, { 'os-update_readonly_flag': { readonly: 'True' } })).status).toBe(202);
    const ro = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: id, connector: CONNECTOR } });
    expect(ro.body.attachment.attach_mode).toBe('ro');
    await t.request('DELETE', `/v3/attachments/${ro.body.attachment.id}`);
    // The string 'False' is false (real Cinder once read it as true).
    expect((await act(id, { 'os-update_readonly_flag': { readonly: 'False' } })).status).toBe(202);
    const rw = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: id, connector: CONNECTOR } });
    expect(rw.body.attachment.attach_mode).toBe('rw');
  });

  it('reset-state with attach_status=detached detaches everything, then sets the status', async () => {
    const id = await availableVolume(t);
    await act(id, { 'os-attach': { instance_uuid: SERVER, mountpoint: '/dev/vdb' } });
    const refused = await act(id, { 'os-reset_status': { status: 'available' } });
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toMatch(/attachments/);
    expect((await act(id, { 'os-reset_status': { status: 'available', attach_status: 'detached' } })).status).toBe(202);
    expect(await volumeOf(id)).toMatchObject({ status: 'available', attachments: [] });
    expect(await counts(id)).toMatchObject({ att_attached: 0 });
  });
});

describe('in-use volumes', () => {
  const attachedVolume = async () => {
    const id = await availableVolume(t);
    await t.request('POST', `/v3/volumes/${id}/action`, { 'os-attach': { instance_uuid: SERVER } });
    return id;
  };

  it('extend only from 3.42, and come back in-use', async () => {
    const id = await attachedVolume();
    const old = await t.request(
      'POST',
      `/v3/volumes/${id}/action`,
      { 'os-extend': { new_size: 2 } },
      { 'openstack-api-version': 'volume 3.41' },
    );
    expect(old.status).toBe(400);
    expect(old.body.badRequest.message).toMatch(/3\.42/);
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } })).status).toBe(202);
    await eventually(async () => {
      const v = await volumeOf(id);
      return v.status === 'in-use' && v.size === 2 ? v : undefined;
    });
  });

  it('snapshot with force (before 3.66) or at 3.66', async () => {
    const id = await attachedVolume();
    const unforced = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: id } }, { 'openstack-api-version': 'volume 3.65' });
    expect(unforced.status).toBe(400);
    const forced = await t.request(
      'POST',
      '/v3/snapshots',
      { snapshot: { volume_id: id, force: 'True' } },
      { 'openstack-api-version': 'volume 3.65' },
    );
    expect(forced.status).toBe(202);
    const modern = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: id } });
    expect(modern.status).toBe(202);
    await waitStatus(t, 'snapshots', modern.body.snapshot.id, 'available');
  });
});
