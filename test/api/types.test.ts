/**
 * Volume types: Cinder's API (types, extra specs, access), the multiattach
 * extra spec, visibility of private types, and the race between a volume
 * create of a type and the type's delete (a type in use is never deleted).
 */
import { describe, expect, it } from 'vitest';
import { useApp, waitStatus } from '../helpers/app.ts';

const tokens = new Map([
  ['admin-token', { user: 'root', project: 'ops', roles: ['admin'] }],
  ['alice-token', { user: 'alice', project: 'aaaa', roles: ['member'] }],
  ['bob-token', { user: 'bob', project: 'bbbb', roles: ['member'] }],
]);
const t = useApp({ auth: { mode: 'tokens', defaultProject: 'admin', tokens } });
const as = (token: string) => ({ 'x-auth-token': token });
const admin = as('admin-token');

async function createType(body: Record<string, unknown>) {
  const res = await t.request('POST', '/v3/types', { volume_type: body }, admin);
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.volume_type;
}

describe('volume types', () => {
  it("are created, shown, listed, updated and deleted by an admin, in Cinder's shapes", async () => {
    const type = await createType({ name: 'gold', description: 'fast', extra_specs: { tier: '1' } });
    expect(Object.keys(type).sort()).toEqual(['description', 'extra_specs', 'id', 'is_public', 'name', 'os-volume-type-access:is_public']);
    expect(type).toMatchObject({ name: 'gold', description: 'fast', is_public: true, extra_specs: { tier: '1' } });
    const shown = (await t.request('GET', `/v3/types/${type.id}`, undefined, as('alice-token'))).body.volume_type;
    expect(shown).toMatchObject({ ...type, qos_specs_id: null });
    expect((await t.request('GET', '/v3/types', undefined, as('alice-token'))).body.volume_types.map((v: any) => v.name)).toEqual(
      expect.arrayContaining(['__DEFAULT__', 'gold']),
    );
    expect((await t.request('GET', '/v3/types/default', undefined, as('alice-token'))).body.volume_type.name).toBe('__DEFAULT__');

    // A member reads types but may not change them.
    expect((await t.request('POST', '/v3/types', { volume_type: { name: 'mine' } }, as('alice-token'))).status).toBe(403);
    expect((await t.request('POST', '/v3/types', { volume_type: { name: 'gold' } }, admin)).status).toBe(409);
    expect((await t.request('POST', '/v3/types', { volume_type: { name: '' } }, admin)).status).toBe(400);

    const updated = await t.request('PUT', `/v3/types/${type.id}`, { volume_type: { name: 'golden', description: null } }, admin);
    expect(updated.body.volume_type).toEqual({
      id: type.id,
      name: 'golden',
      description: null,
      is_public: true,
      extra_specs: { tier: '1' },
    });
    expect((await t.request('DELETE', `/v3/types/${type.id}`, undefined, admin)).status).toBe(202);
    expect((await t.request('GET', `/v3/types/${type.id}`, undefined, admin)).status).toBe(404);
    const def = (await t.request('GET', '/v3/types/default', undefined, admin)).body.volume_type;
    expect((await t.request('DELETE', `/v3/types/${def.id}`, undefined, admin)).status).toBe(400);
  });

  it('keep extra specs: set, show, update one key, delete', async () => {
    const type = await createType({ name: 'specs' });
    const base = `/v3/types/${type.id}/extra_specs`;
    expect((await t.request('POST', base, { extra_specs: { a: '1', b: '2' } }, admin)).body).toEqual({ extra_specs: { a: '1', b: '2' } });
    expect((await t.request('PUT', `${base}/a`, { a: '9' }, admin)).body).toEqual({ a: '9' });
    expect((await t.request('GET', `${base}/a`, undefined, admin)).body).toEqual({ a: '9' });
    expect((await t.request('PUT', `${base}/a`, { b: '9' }, admin)).status).toBe(400);
    expect((await t.request('PUT', `${base}/a`, { a: '1', b: '2' }, admin)).status).toBe(400);
    expect((await t.request('POST', base, { extra_specs: null }, admin)).status).toBe(400);
    expect((await t.request('DELETE', `${base}/a`, undefined, admin)).status).toBe(202);
    expect((await t.request('GET', `${base}/a`, undefined, admin)).status).toBe(404);
    expect((await t.request('GET', base, undefined, admin)).body).toEqual({ extra_specs: { b: '2' } });
    expect((await t.request('GET', '/v3/types/00000000-0000-4000-8000-000000000000/extra_specs', undefined, admin)).status).toBe(404);
  });

  it('private types are seen and used only by the projects given access', async () => {
    const type = await createType({ name: 'private', 'os-volume-type-access:is_public': false });
    const volumeOf = (token: string) => t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: 'private' } }, as(token));
    expect((await volumeOf('alice-token')).status).toBe(404);
    expect((await t.request('GET', `/v3/types/${type.id}`, undefined, as('alice-token'))).status).toBe(404);
    expect((await t.request('POST', `/v3/types/${type.id}/action`, { addProjectAccess: { project: 'aaaa' } }, admin)).status).toBe(202);
    expect((await t.request('POST', `/v3/types/${type.id}/action`, { addProjectAccess: { project: 'aaaa' } }, admin)).status).toBe(409);
    expect((await t.request('GET', `/v3/types/${type.id}/os-volume-type-access`, undefined, admin)).body).toEqual({
      volume_type_access: [{ volume_type_id: type.id, project_id: 'aaaa' }],
    });
    const made = await volumeOf('alice-token');
    expect(made.status).toBe(202);
    expect(made.body.volume.volume_type).toBe('private');
    expect((await volumeOf('bob-token')).status).toBe(404);
    expect((await t.request('GET', '/v3/types', undefined, as('bob-token'))).body.volume_types.map((v: any) => v.name)).not.toContain(
      'private',
    );
    expect((await t.request('POST', `/v3/types/${type.id}/action`, { removeProjectAccess: { project: 'aaaa' } }, admin)).status).toBe(202);
    expect((await volumeOf('alice-token')).status).toBe(404);
    const pub = await createType({ name: 'public-one' });
    expect((await t.request('POST', `/v3/types/${pub.id}/action`, { addProjectAccess: { project: 'aaaa' } }, admin)).status).toBe(400);
    expect((await t.request('GET', `/v3/types/${pub.id}/os-volume-type-access`, undefined, admin)).status).toBe(404);
  });

  it('make multiattach volumes from the extra spec multiattach="<is> True", as Cinder does', async () => {
    await createType({ name: 'shared', extra_specs: { multiattach: '<is> True' } });
    const res = await t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: 'shared' } }, admin);
    const shown = await waitStatus(t, 'volumes', res.body.volume.id, 'available', 10_000, admin);
    expect(shown).toMatchObject({ multiattach: true, volume_type: 'shared' });
    const state = await t.db.sql`SELECT multiattach FROM resource_states WHERE resource_id = ${res.body.volume.id}`;
    expect(state[0]!.multiattach).toBe(true);
  });

  it('never deletes a type a live volume uses, whatever the race (20 rounds of create-with-type against delete-type)', async () => {
    let deleted = 0;
    let created = 0;
    for (let round = 0; round < 20; round++) {
      const type = await createType({ name: `racy-${round}` });
      const [create, remove] = await Promise.all([
        t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: type.id } }, admin),
        t.request('DELETE', `/v3/types/${type.id}`, undefined, admin),
      ]);
      // Exactly one wins: the volume (and the delete is refused as in use), or the delete (and the create finds no type).
      expect([create.status, remove.status].sort(), JSON.stringify([create.body, remove.body])).toEqual(
        create.status === 202 ? [202, 400] : [202, 404],
      );
      if (create.status === 202) created++;
      else deleted++;
    }
    const orphans = await t.db.sql`
      SELECT v.id FROM volumes v JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = v.id
      WHERE v.volume_type_id IS NULL AND s.state <> 'deleted'`;
    expect(orphans).toEqual([]);
    console.log(`type race: ${created} creates won, ${deleted} deletes won`);
  });
});

describe('os-retype', () => {
  it('moves a volume to another type on the same backend through retyping, and back to where it was', async () => {
    await createType({ name: 'from-type' });
    const to = await createType({ name: 'to-type' });
    const res = await t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: 'from-type' } }, admin);
    const id = res.body.volume.id as string;
    await waitStatus(t, 'volumes', id, 'available', 10_000, admin);
    const retype = (newType: string, extra: Record<string, unknown> = {}) =>
      t.request('POST', `/v3/volumes/${id}/action`, { 'os-retype': { new_type: newType, migration_policy: 'never', ...extra } }, admin);
    expect((await retype('from-type')).status).toBe(400);
    expect((await retype('no-such-type')).status).toBe(404);
    expect((await retype('to-type', { migration_policy: 'sometimes' })).status).toBe(400);
    await createType({ name: 'elsewhere', extra_specs: { volume_backend_name: 'another-backend' } });
    const migration = await retype('elsewhere');
    expect(migration.status).toBe(400);
    expect(migration.body.badRequest.message).toMatch(/needs a migration, which volstate does not do/);

    expect((await retype(to.id)).status).toBe(202);
    const shown = await waitStatus(t, 'volumes', id, 'available', 10_000, admin);
    expect(shown).toMatchObject({ volume_type: 'to-type' });
    const history = (await t.request('GET', `/v3/volumes/${id}/transitions`, undefined, admin)).body.transitions.map(
      (h: any) => `${h.event} → ${h.to}`,
    );
    expect(history.slice(-2)).toEqual(['RETYPE → retyping.backend', 'RETYPED → available']);
    // The type it left can go; the one it has cannot.
    const from = (await t.request('GET', '/v3/types/from-type', undefined, admin)).body.volume_type;
    expect((await t.request('DELETE', `/v3/types/${from.id}`, undefined, admin)).status).toBe(202);
    expect((await t.request('DELETE', `/v3/types/${to.id}`, undefined, admin)).status).toBe(400);
  });
});

describe('volume type encryption', () => {
  it("is created, shown, changed and deleted by an admin in Cinder's shapes, and a volume of the type is encrypted", async () => {
    const type = await createType({ name: 'secret' });
    const spec = { provider: 'luks', key_size: 256, cipher: 'aes-xts-plain64', control_location: 'front-end' };
    const created = await t.request('POST', `/v3/types/${type.id}/encryption`, { encryption: spec }, admin);
    expect(created.status, JSON.stringify(created.body)).toBe(200);
    expect(created.body.encryption).toEqual({ ...spec, volume_type_id: type.id, encryption_id: expect.any(String) });
    const encryptionId = created.body.encryption.encryption_id as string;
    expect((await t.request('POST', `/v3/types/${type.id}/encryption`, { encryption: spec }, admin)).status).toBe(400);
    expect((await t.request('POST', `/v3/types/${type.id}/encryption`, { encryption: spec }, as('alice-token'))).status).toBe(403);
    const bad = await t.request(
      'POST',
      `/v3/types/${type.id}/encryption`,
      { encryption: { provider: 'luks', control_location: 'middle' } },
      admin,
    );
    expect(bad.status).toBe(400);
    expect(bad.body.badRequest.message).toMatch(/control_location/);

    const shown = (await t.request('GET', `/v3/types/${type.id}/encryption`, undefined, admin)).body;
    expect(shown).toMatchObject({ ...spec, volume_type_id: type.id, encryption_id: encryptionId, deleted: false, deleted_at: null });
    const changed = await t.request(
      'PUT',
      `/v3/types/${type.id}/encryption/${encryptionId}`,
      { encryption: { key_size: 128, control_location: 'back-end' } },
      admin,
    );
    expect(changed.body).toEqual({ encryption: { key_size: 128, control_location: 'back-end' } });
    expect((await t.request('GET', `/v3/types/${type.id}/encryption/key_size`, undefined, admin)).body).toEqual({ key_size: 128 });
    expect((await t.request('GET', `/v3/types/${type.id}/encryption/nothing`, undefined, admin)).status).toBe(404);

    // A volume of the type is encrypted; while it lives, the encryption does not change.
    const made = await t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: type.id } }, admin);
    expect(made.body.volume.encrypted).toBe(true);
    await waitStatus(t, 'volumes', made.body.volume.id, 'available', 10_000, admin);
    for (const [method, path, body] of [
      ['PUT', `/v3/types/${type.id}/encryption/${encryptionId}`, { encryption: { key_size: 512 } }],
      ['DELETE', `/v3/types/${type.id}/encryption/${encryptionId}`, undefined],
    ] as const) {
      const refused = await t.request(method, path, body, admin);
      expect(refused.status).toBe(400);
      expect(refused.body.badRequest.message).toMatch(/in use/);
    }
    // Nor does a retype cross between encrypted and plain data.
    const plain = await createType({ name: 'plain-for-retype' });
    const retype = await t.request('POST', `/v3/volumes/${made.body.volume.id}/action`, { 'os-retype': { new_type: plain.id } }, admin);
    expect(retype.status).toBe(400);
    expect(retype.body.badRequest.message).toMatch(/migration/);
    expect((await t.request('DELETE', `/v3/volumes/${made.body.volume.id}`, undefined, admin)).status).toBe(202);
    await waitStatus(t, 'volumes', made.body.volume.id, 'gone', 10_000, admin);

    expect((await t.request('DELETE', `/v3/types/${type.id}/encryption/${encryptionId}`, undefined, admin)).status).toBe(202);
    expect((await t.request('GET', `/v3/types/${type.id}/encryption`, undefined, admin)).body).toEqual({});
    expect((await t.request('DELETE', `/v3/types/${type.id}/encryption/${encryptionId}`, undefined, admin)).status).toBe(404);
    expect((await t.request('POST', '/v3/types/00000000-0000-4000-8000-00000000abcd/encryption', { encryption: spec }, admin)).status).toBe(
      404,
    );
  });
});

describe('project default types (3.62)', () => {
  it("give a project's typeless volumes its default, name it at GET /types/default, and keep the type from deletion", async () => {
    const mv = { 'openstack-api-version': 'volume 3.62' };
    const type = await createType({ name: 'alice-default' });
    const set = await t.request('PUT', '/v3/default-types/aaaa', { default_type: { volume_type: 'alice-default' } }, { ...admin, ...mv });
    expect(set.status, JSON.stringify(set.body)).toBe(200);
    expect(set.body).toEqual({ default_type: { project_id: 'aaaa', volume_type_id: type.id } });
    expect((await t.request('GET', '/v3/default-types/aaaa', undefined, { ...admin, ...mv })).body.default_type.volume_type_id).toBe(
      type.id,
    );
    expect((await t.request('GET', '/v3/default-types', undefined, { ...admin, ...mv })).body.default_types).toContainEqual({
      project_id: 'aaaa',
      volume_type_id: type.id,
    });
    expect((await t.request('GET', '/v3/default-types', undefined, { ...as('alice-token'), ...mv })).status).toBe(403);
    expect((await t.request('GET', '/v3/default-types', undefined, { ...admin, 'openstack-api-version': 'volume 3.61' })).status).toBe(404);

    // Alice's typeless volume is of her default; Bob's of __DEFAULT__.
    const alices = await t.request('POST', '/v3/volumes', { volume: { size: 1 } }, as('alice-token'));
    expect(alices.body.volume.volume_type).toBe('alice-default');
    const bobs = await t.request('POST', '/v3/volumes', { volume: { size: 1 } }, as('bob-token'));
    expect(bobs.body.volume.volume_type).toBe('__DEFAULT__');
    expect((await t.request('GET', '/v3/types/default', undefined, as('alice-token'))).body.volume_type.name).toBe('alice-default');
    expect((await t.request('GET', '/v3/types/default', undefined, as('bob-token'))).body.volume_type.name).toBe('__DEFAULT__');

    await waitStatus(t, 'volumes', alices.body.volume.id, 'available', 10_000, as('alice-token'));
    expect((await t.request('DELETE', `/v3/volumes/${alices.body.volume.id}`, undefined, as('alice-token'))).status).toBe(202);
    await waitStatus(t, 'volumes', alices.body.volume.id, 'gone', 10_000, as('alice-token'));
    const refused = await t.request('DELETE', `/v3/types/${type.id}`, undefined, admin);
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toMatch(/default type/);
    expect((await t.request('DELETE', '/v3/default-types/aaaa', undefined, { ...admin, ...mv })).status).toBe(204);
    expect((await t.request('DELETE', '/v3/default-types/aaaa', undefined, { ...admin, ...mv })).status).toBe(404);
    expect((await t.request('DELETE', `/v3/types/${type.id}`, undefined, admin)).status).toBe(202);
  });
});
