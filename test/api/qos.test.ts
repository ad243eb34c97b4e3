/**
 * QoS specs: Cinder's API (create, list, show, set and unset keys,
 * associate with volume types, delete refused while associated unless
 * forced), admin only.
 */
import { describe, expect, it } from 'vitest';
import { useApp, waitStatus } from '../helpers/app.ts';

const tokens = new Map([
  ['admin-token', { user: 'root', project: 'ops', roles: ['admin'] }],
  ['alice-token', { user: 'alice', project: 'aaaa', roles: ['member'] }],
]);
const t = useApp({ auth: { mode: 'tokens', defaultProject: 'admin', tokens } });
const admin = { 'x-auth-token': 'admin-token' };

describe('QoS specs', () => {
  it("are created, listed, shown, changed and deleted, in Cinder's shapes", async () => {
    const created = await t.request(
      'POST',
      '/v3/qos-specs',
      { qos_specs: { name: 'fast', consumer: 'front-end', read_iops_sec: '2000' } },
      admin,
    );
    expect(created.status).toBe(200);
    const q = created.body.qos_specs;
    expect(q).toEqual({ id: expect.any(String), name: 'fast', consumer: 'front-end', specs: { read_iops_sec: '2000' } });
    expect(created.body.links.map((l: any) => l.rel)).toEqual(['self', 'bookmark']);
    expect((await t.request('GET', '/v3/qos-specs', undefined, admin)).body.qos_specs).toContainEqual(q);
    expect((await t.request('GET', `/v3/qos-specs/${q.id}`, undefined, admin)).body.qos_specs).toEqual(q);

    expect((await t.request('PUT', `/v3/qos-specs/${q.id}`, { qos_specs: { iops_bytes: '500' } }, admin)).body).toEqual({
      qos_specs: { iops_bytes: '500' },
    });
    expect((await t.request('GET', `/v3/qos-specs/${q.id}`, undefined, admin)).body.qos_specs.specs).toEqual({
      read_iops_sec: '2000',
      iops_bytes: '500',
    });
    expect((await t.request('PUT', `/v3/qos-specs/${q.id}/delete_keys`, { keys: ['iops_bytes', 'nope'] }, admin)).status).toBe(404);
    expect((await t.request('PUT', `/v3/qos-specs/${q.id}/delete_keys`, { keys: ['iops_bytes'] }, admin)).status).toBe(202);
    expect((await t.request('GET', `/v3/qos-specs/${q.id}`, undefined, admin)).body.qos_specs.specs).toEqual({ read_iops_sec: '2000' });

    expect((await t.request('POST', '/v3/qos-specs', { qos_specs: { name: 'fast' } }, admin)).status).toBe(409);
    expect((await t.request('POST', '/v3/qos-specs', { qos_specs: { name: 'x', consumer: 'sideways' } }, admin)).status).toBe(400);
    expect((await t.request('GET', '/v3/qos-specs', undefined, { 'x-auth-token': 'alice-token' })).status).toBe(403);
    expect((await t.request('DELETE', `/v3/qos-specs/${q.id}`, undefined, admin)).status).toBe(202);
    expect((await t.request('GET', `/v3/qos-specs/${q.id}`, undefined, admin)).status).toBe(404);
  });

  it('are associated with volume types; a delete is refused while they are, unless forced', async () => {
    const q = (await t.request('POST', '/v3/qos-specs', { qos_specs: { name: 'assoc' } }, admin)).body.qos_specs;
    const types: string[] = [];
    for (const name of ['qa', 'qb', 'qc'])
      types.push((await t.request('POST', '/v3/types', { volume_type: { name } }, admin)).body.volume_type.id);
    for (const id of types)
      expect((await t.request('GET', `/v3/qos-specs/${q.id}/associate?vol_type_id=${id}`, undefined, admin)).status).toBe(202);
    const assoc = (await t.request('GET', `/v3/qos-specs/${q.id}/associations`, undefined, admin)).body.qos_associations;
    expect(assoc.map((a: any) => a.id).sort()).toEqual([...types].sort());
    expect(assoc[0]).toMatchObject({ association_type: 'volume_type', name: 'qa' });
    expect((await t.request('GET', `/v3/types/${types[0]}`, undefined, admin)).body.volume_type.qos_specs_id).toBe(q.id);

    const other = (await t.request('POST', '/v3/qos-specs', { qos_specs: { name: 'other' } }, admin)).body.qos_specs;
    expect((await t.request('GET', `/v3/qos-specs/${other.id}/associate?vol_type_id=${types[0]}`, undefined, admin)).status).toBe(400);
    expect((await t.request('GET', `/v3/qos-specs/${q.id}/disassociate?vol_type_id=${types[0]}`, undefined, admin)).status).toBe(202);
    expect((await t.request('DELETE', `/v3/qos-specs/${q.id}`, undefined, admin)).status).toBe(400);
    expect((await t.request('GET', `/v3/qos-specs/${q.id}/disassociate_all`, undefined, admin)).status).toBe(202);
    expect((await t.request('GET', `/v3/qos-specs/${q.id}/associations`, undefined, admin)).body.qos_associations).toEqual([]);
    expect((await t.request('GET', `/v3/qos-specs/${other.id}/associate?vol_type_id=${types[1]}`, undefined, admin)).status).toBe(202);
    expect((await t.request('DELETE', `/v3/qos-specs/${other.id}?force=True`, undefined, admin)).status).toBe(202);
    expect((await t.request('GET', `/v3/types/${types[1]}`, undefined, admin)).body.volume_type.qos_specs_id).toBeNull();
  });

  it("reach the host in connection_info when their consumer is front-end or both, as Cinder's do", async () => {
    const mv = { ...admin, 'openstack-api-version': 'volume 3.70' };
    const connector = { host: 'h1', initiator: 'iqn.2004-10.org.test:h1' };
    const connect = async (consumer: string) => {
      const q = (await t.request('POST', '/v3/qos-specs', { qos_specs: { name: `c-${consumer}`, consumer, total_iops_sec: '500' } }, admin))
        .body.qos_specs;
      const type = (await t.request('POST', '/v3/types', { volume_type: { name: `t-${consumer}` } }, admin)).body.volume_type.id;
      expect((await t.request('GET', `/v3/qos-specs/${q.id}/associate?vol_type_id=${type}`, undefined, admin)).status).toBe(202);
      const vol = (await t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: type } }, mv)).body.volume.id;
      await waitStatus(t, 'volumes', vol, 'available', 10_000, admin);
      const legacy = await t.request('POST', `/v3/volumes/${vol}/action`, { 'os-initialize_connection': { connector } }, mv);
      expect(legacy.status).toBe(200);
      const att = await t.request(
        'POST',
        '/v3/attachments',
        { attachment: { volume_uuid: vol, instance_uuid: crypto.randomUUID(), connector } },
        mv,
      );
      expect(att.status, JSON.stringify(att.body)).toBe(200);
      return [legacy.body.connection_info.data.qos_specs, att.body.attachment.connection_info.qos_specs];
    };
    expect(await connect('front-end')).toEqual([{ total_iops_sec: '500' }, { total_iops_sec: '500' }]);
    expect(await connect('both')).toEqual([{ total_iops_sec: '500' }, { total_iops_sec: '500' }]);
    expect(await connect('back-end')).toEqual([null, null]);
  });
});
