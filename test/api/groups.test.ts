/**
 * Group types, groups and group snapshots through the API (3.11–3.20), as
 * Tempest drives them, and what volstate does beyond Cinder: a group
 * snapshot, a delete with volumes and an update are each one transaction
 * over the group and all its members, so a busy member refuses the whole
 * request and nothing is left half done.
 */
import { describe, expect, it } from 'vitest';
import { availableVolume, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ latencyMs: 2 });

async function groupType(name: string, specs: Record<string, string> = {}) {
  const res = await t.request('POST', '/v3/group_types', { group_type: { name, group_specs: specs } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return res.body.group_type as { id: string; name: string };
}

async function volumeType(name: string) {
  const res = await t.request('POST', '/v3/types', { volume_type: { name } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.volume_type as { id: string };
}

async function availableGroup(typeId: string, volumeTypes: string[], name = 'g') {
  const res = await t.request('POST', '/v3/groups', { group: { name, group_type: typeId, volume_types: volumeTypes } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(Object.keys(res.body.group).sort()).toEqual(['id', 'name']);
  await waitStatus(t, 'groups', res.body.group.id, 'available');
  return res.body.group.id as string;
}

const groupVolumes = async (groupId: string) =>
  ((await t.request('GET', `/v3/volumes/detail?group_id=${groupId}`)).body.volumes as { id: string; group_id: string }[])
    .map((v) => v.id)
    .sort();

describe('group types', () => {
  it('are created, listed, shown, updated and deleted by an admin, with group specs; the default is 404 until configured', async () => {
    const gt = await groupType('gt-crud', { consistent_group_snapshot_enabled: '<is> False' });
    const shown = await t.request('GET', `/v3/group_types/${gt.id}`);
    expect(shown.body.group_type).toEqual({
      id: gt.id,
      name: 'gt-crud',
      description: null,
      is_public: true,
      group_specs: { consistent_group_snapshot_enabled: '<is> False' },
    });
    expect((await t.request('GET', '/v3/group_types/default')).status).toBe(404);
    // Below 3.11 the route does not exist.
    expect((await t.request('GET', '/v3/group_types', undefined, { 'openstack-api-version': 'volume 3.10' })).status).toBe(404);
    const updated = await t.request('PUT', `/v3/group_types/${gt.id}`, { group_type: { name: 'gt-renamed', description: 'd' } });
    expect(updated.body.group_type.name).toBe('gt-renamed');
    expect((await t.request('POST', '/v3/group_types', { group_type: { name: 'gt-renamed' } })).status).toBe(409);

    expect((await t.request('POST', `/v3/group_types/${gt.id}/group_specs`, { group_specs: { a: 'b' } })).status).toBe(202);
    expect((await t.request('GET', `/v3/group_types/${gt.id}/group_specs/a`)).body).toEqual({ a: 'b' });
    expect((await t.request('PUT', `/v3/group_types/${gt.id}/group_specs/a`, { a: 'c' })).body).toEqual({ a: 'c' });
    expect((await t.request('PUT', `/v3/group_types/${gt.id}/group_specs/a`, { b: 'c' })).status).toBe(400);
    expect((await t.request('DELETE', `/v3/group_types/${gt.id}/group_specs/a`)).status).toBe(202);
    expect((await t.request('GET', `/v3/group_types/${gt.id}/group_specs/a`)).status).toBe(404);

    const listed = (await t.request('GET', '/v3/group_types?is_public=None&sort=name:desc')).body.group_types as { name: string }[];
    expect(listed.map((x) => x.name)).toContain('default_cgsnapshot_type');
    const names = listed.map((x) => x.name);
    expect(names).toEqual([...names].sort().reverse());

    expect((await t.request('DELETE', `/v3/group_types/${gt.id}`)).status).toBe(202);
    expect((await t.request('GET', `/v3/group_types/${gt.id}`)).status).toBe(404);
  });

  it('a type in use by a group is not deleted', async () => {
    const gt = await groupType('gt-used');
    const vt = await volumeType('vt-used');
    const g = await availableGroup(gt.id, [vt.id]);
    const refused = await t.request('DELETE', `/v3/group_types/${gt.id}`);
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toMatch(/still in use/);
    expect((await t.request('POST', `/v3/groups/${g}/action`, { delete: { 'delete-volumes': false } })).status).toBe(202);
    await waitStatus(t, 'groups', g, 'gone');
    expect((await t.request('DELETE', `/v3/group_types/${gt.id}`)).status).toBe(202);
  });
});

describe('groups', () => {
  it('take volumes at create and by update, list them, and are deleted with them', async () => {
    const gt = await groupType('gt-life');
    const vt = await volumeType('vt-life');
    const g = await availableGroup(gt.id, [vt.id], 'life');
    const v1 = await availableVolume(t, 1, { volume_type: vt.id, group_id: g });
    const v2 = await availableVolume(t, 1, { volume_type: vt.id });
    expect((await t.request('GET', `/v3/volumes/${v1}`)).body.volume.group_id).toBe(g);
    expect(await groupVolumes(g)).toEqual([v1]);

    // A volume of another type may not join, at its create (refused by the create's statement,
    // changing nothing: the group still has its one member) or later.
    const created = await t.request(
      'POST',
      '/v3/volumes',
      { volume: { size: 1, group_id: g } },
      { 'openstack-api-version': 'volume 3.13' },
    );
    expect(created.status).toBe(400);
    expect(created.body.badRequest.message).toBe(
      `Invalid input received: volume type __DEFAULT__ is not one of group ${g}'s volume types; create the volume with one of ${vt.id}.`,
    );
    expect(await groupVolumes(g)).toEqual([v1]);
    const other = await availableVolume(t, 1);
    const wrongType = await t.request('PUT', `/v3/groups/${g}`, { group: { add_volumes: other } });
    expect(wrongType.status).toBe(400);
    expect(wrongType.body.badRequest.message).toMatch(/not one of the group's volume types/);

    expect((await t.request('PUT', `/v3/groups/${g}`, { group: { add_volumes: v2, name: 'life2' } })).status).toBe(202);
    expect(await groupVolumes(g)).toEqual([v1, v2].sort());
    const detail = await t.request('GET', `/v3/groups/${g}?list_volume=True`);
    expect(detail.body.group).toMatchObject({ name: 'life2', status: 'available', group_type: gt.id, volume_types: [vt.id] });
    expect([...detail.body.group.volumes].sort()).toEqual([v1, v2].sort());
    expect((await t.request('PUT', `/v3/groups/${g}`, { group: { remove_volumes: v2 } })).status).toBe(202);
    expect(await groupVolumes(g)).toEqual([v1]);
    expect((await t.request('GET', `/v3/volumes/${v2}`)).body.volume.group_id).toBeNull();

    // Not without its volumes unless asked; with them, all of them.
    const refused = await t.request('POST', `/v3/groups/${g}/action`, { delete: { 'delete-volumes': false } });
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toMatch(/it has volumes/);
    expect((await t.request('POST', `/v3/groups/${g}/action`, { delete: { 'delete-volumes': true } })).status).toBe(202);
    await waitStatus(t, 'volumes', v1, 'gone');
    await waitStatus(t, 'groups', g, 'gone');
    expect((await t.request('GET', `/v3/volumes/${v2}`)).status).toBe(200);
    const listed = (await t.request('GET', '/v3/groups')).body.groups as { id: string }[];
    expect(listed.map((x) => x.id)).not.toContain(g);
  });

  it('a delete with volumes is refused whole when one member cannot be deleted, naming it', async () => {
    const gt = await groupType('gt-atomic-delete');
    const vt = await volumeType('vt-atomic-delete');
    const g = await availableGroup(gt.id, [vt.id]);
    const free = await availableVolume(t, 1, { volume_type: vt.id, group_id: g });
    const held = await availableVolume(t, 1, { volume_type: vt.id, group_id: g });
    const snap = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: held } });
    await waitStatus(t, 'snapshots', snap.body.snapshot.id, 'available');
    const refused = await t.request('POST', `/v3/groups/${g}/action`, { delete: { 'delete-volumes': true } });
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toContain(held);
    // Nothing moved: the group and the other member are still available.
    expect((await t.request('GET', `/v3/groups/${g}`)).body.group.status).toBe('available');
    expect((await t.request('GET', `/v3/volumes/${free}`)).body.volume.status).toBe('available');
  });

  it('reset_status is an admin action from 3.20, and takes Cinder statuses', async () => {
    const gt = await groupType('gt-reset');
    const vt = await volumeType('vt-reset');
    const g = await availableGroup(gt.id, [vt.id]);
    for (const status of ['creating', 'available', 'error']) {
      expect((await t.request('POST', `/v3/groups/${g}/action`, { reset_status: { status } })).status).toBe(202);
      await waitStatus(t, 'groups', g, status);
    }
    expect((await t.request('POST', `/v3/groups/${g}/action`, { reset_status: { status: 'in-use' } })).status).toBe(400);
    const old = await t.request(
      'POST',
      `/v3/groups/${g}/action`,
      { reset_status: { status: 'available' } },
      { 'openstack-api-version': 'volume 3.19' },
    );
    expect(old.status).toBe(404);
  });
});

describe('group snapshots', () => {
  it('snapshot every member at once; members go with the group snapshot only; the group waits for its snapshots', async () => {
    const gt = await groupType('gt-snap');
    const vt = await volumeType('vt-snap');
    const g = await availableGroup(gt.id, [vt.id]);
    const v1 = await availableVolume(t, 1, { volume_type: vt.id, group_id: g });
    const v2 = await availableVolume(t, 2, { volume_type: vt.id, group_id: g });
    const res = await t.request('POST', '/v3/group_snapshots', { group_snapshot: { group_id: g, name: 'gs' } });
    expect(res.status, JSON.stringify(res.body)).toBe(202);
    expect(res.body.group_snapshot).toEqual({ id: expect.any(String), name: 'gs', group_type_id: gt.id });
    const gs = res.body.group_snapshot.id as string;
    const shown = await waitStatus(t, 'group_snapshots', gs, 'available');
    expect(shown).toMatchObject({ group_id: g, group_type_id: gt.id, name: 'gs' });
    const members = (await t.request('GET', '/v3/snapshots/detail')).body.snapshots.filter(
      (s: { group_snapshot_id: string | null }) => s.group_snapshot_id === gs,
    ) as { id: string; volume_id: string; status: string; size: number }[];
    expect(members.map((m) => m.volume_id).sort()).toEqual([v1, v2].sort());
    expect(members.every((m) => m.status === 'available')).toBe(true);
    for (const m of members) expect(t.backend.snapshots.has(m.id)).toBe(true);

    const alone = await t.request('DELETE', `/v3/snapshots/${members[0]!.id}`);
    expect(alone.status).toBe(400);
    expect(alone.body.badRequest.message).toMatch(/part of group snapshot/);
    const groupRefused = await t.request('POST', `/v3/groups/${g}/action`, { delete: { 'delete-volumes': true } });
    expect(groupRefused.status).toBe(400);
    expect(groupRefused.body.badRequest.message).toMatch(/group snapshots/);

    for (const status of ['creating', 'available', 'error']) {
      expect((await t.request('POST', `/v3/group_snapshots/${gs}/action`, { reset_status: { status } })).status).toBe(202);
      await waitStatus(t, 'group_snapshots', gs, status);
    }
    expect((await t.request('DELETE', `/v3/group_snapshots/${gs}`)).status).toBe(202);
    await waitStatus(t, 'group_snapshots', gs, 'gone');
    for (const m of members) await waitStatus(t, 'snapshots', m.id, 'gone');
    expect((await t.request('POST', `/v3/groups/${g}/action`, { delete: { 'delete-volumes': true } })).status).toBe(202);
    await waitStatus(t, 'groups', g, 'gone');
  });

  it('is refused whole while a member is being extended, naming the member, and leaves nothing behind', async () => {
    const gt = await groupType('gt-busy');
    const vt = await volumeType('vt-busy');
    const g = await availableGroup(gt.id, [vt.id]);
    const calm = await availableVolume(t, 1, { volume_type: vt.id, group_id: g });
    const busy = await availableVolume(t, 1, { volume_type: vt.id, group_id: g });
    const gate = t.faults.hold('extend');
    expect((await t.request('POST', `/v3/volumes/${busy}/action`, { 'os-extend': { new_size: 2 } })).status).toBe(202);
    await gate.reached;
    const before = (await t.request('GET', '/v3/snapshots')).body.snapshots.length as number;
    const refused = await t.request('POST', '/v3/group_snapshots', { group_snapshot: { group_id: g, name: 'no' } });
    gate.release();
    expect(refused.status).toBe(409);
    expect(JSON.stringify(refused.body)).toContain(busy);
    expect((await t.request('GET', '/v3/snapshots')).body.snapshots.length).toBe(before);
    expect((await t.request('GET', '/v3/group_snapshots')).body.group_snapshots).toEqual([]);
    expect((await t.request('GET', `/v3/volumes/${calm}`)).body.volume.status).toBe('available');
    await waitStatus(t, 'volumes', busy, 'available');
  });

  it('make a group from a group snapshot or a source group: a volume per member, every one or none', async () => {
    const gt = await groupType('gt-src');
    const vt = await volumeType('vt-src');
    const g = await availableGroup(gt.id, [vt.id]);
    const v1 = await availableVolume(t, 1, { volume_type: vt.id, group_id: g });
    const v2 = await availableVolume(t, 2, { volume_type: vt.id, group_id: g });
    const gs = (await t.request('POST', '/v3/group_snapshots', { group_snapshot: { group_id: g, name: 'src' } })).body.group_snapshot
      .id as string;
    await waitStatus(t, 'group_snapshots', gs, 'available');

    const fromSnapshot = await t.request('POST', '/v3/groups/action', { 'create-from-src': { group_snapshot_id: gs, name: 'copy' } });
    expect(fromSnapshot.status, JSON.stringify(fromSnapshot.body)).toBe(202);
    const copy = fromSnapshot.body.group.id as string;
    await waitStatus(t, 'groups', copy, 'available');
    const copied = await groupVolumes(copy);
    expect(copied).toHaveLength(2);
    for (const v of copied) await waitStatus(t, 'volumes', v, 'available');
    const sizes = await Promise.all(copied.map(async (v) => (await t.request('GET', `/v3/volumes/${v}`)).body.volume.size as number));
    expect(sizes.sort()).toEqual([1, 2]);
    expect((await t.request('GET', `/v3/groups/${copy}`)).body.group).toMatchObject({ group_snapshot_id: gs, source_group_id: null });

    const fromGroup = await t.request('POST', '/v3/groups/action', { 'create-from-src': { source_group_id: g, name: 'clone' } });
    expect(fromGroup.status, JSON.stringify(fromGroup.body)).toBe(202);
    const clone = fromGroup.body.group.id as string;
    await waitStatus(t, 'groups', clone, 'available');
    const clones = await groupVolumes(clone);
    expect(clones).toHaveLength(2);
    // Each clone reads its source until its copy is made: the sources are free once the clones are available.
    for (const v of clones) await waitStatus(t, 'volumes', v, 'available');

    // Both keys, or neither: refused.
    expect(
      (await t.request('POST', '/v3/groups/action', { 'create-from-src': { group_snapshot_id: gs, source_group_id: g } })).status,
    ).toBe(400);
    // A member that cannot be read refuses the whole request: nothing is made.
    const before = (await t.request('GET', '/v3/groups')).body.groups.length as number;
    const gate = t.faults.hold('extend');
    expect((await t.request('POST', `/v3/volumes/${v2}/action`, { 'os-extend': { new_size: 3 } })).status).toBe(202);
    await gate.reached;
    const refused = await t.request('POST', '/v3/groups/action', { 'create-from-src': { source_group_id: g, name: 'no' } });
    gate.release();
    expect(refused.status).toBe(409);
    expect(JSON.stringify(refused.body)).toContain(v2);
    expect((await t.request('GET', '/v3/groups')).body.groups.length).toBe(before);
    await waitStatus(t, 'volumes', v2, 'available');
    // The refused request left the other member as it was.
    expect((await t.request('GET', `/v3/volumes/${v1}`)).body.volume.status).toBe('available');
  });
});

describe('consistency groups (the legacy API, served from groups)', () => {
  it('create, take volumes by consistencygroup_id, snapshot, copy and delete, as cinder-tempest-plugin drives them', async () => {
    const vt = await volumeType('vt-cg');
    const made = await t.request(
      'POST',
      '/v3/consistencygroups',
      { consistencygroup: { name: 'cg', volume_types: vt.id } },
      { 'openstack-api-version': 'volume 3.0' },
    );
    expect(made.status, JSON.stringify(made.body)).toBe(202);
    const cg = made.body.consistencygroup.id as string;
    await waitStatus(t, 'groups', cg, 'available');
    const shown = (await t.request('GET', `/v3/consistencygroups/${cg}`)).body.consistencygroup;
    expect(shown).toMatchObject({ id: cg, name: 'cg', status: 'available', volume_types: [vt.id] });
    // A consistency group is a group of default_cgsnapshot_type.
    const types = (await t.request('GET', '/v3/group_types?is_public=None')).body.group_types as { id: string; name: string }[];
    expect((await t.request('GET', `/v3/groups/${cg}`)).body.group.group_type).toBe(
      types.find((x) => x.name === 'default_cgsnapshot_type')!.id,
    );

    const v = await t.request(
      'POST',
      '/v3/volumes',
      { volume: { size: 1, volume_type: vt.id, consistencygroup_id: cg } },
      { 'openstack-api-version': 'volume 3.0' },
    );
    expect(v.status, JSON.stringify(v.body)).toBe(202);
    await waitStatus(t, 'volumes', v.body.volume.id, 'available');
    expect((await t.request('GET', `/v3/volumes/${v.body.volume.id}`)).body.volume).toMatchObject({
      consistencygroup_id: cg,
      group_id: cg,
    });

    const snap = await t.request('POST', '/v3/cgsnapshots', { cgsnapshot: { consistencygroup_id: cg, name: 'cgs' } });
    expect(snap.status, JSON.stringify(snap.body)).toBe(202);
    const cgs = snap.body.cgsnapshot.id as string;
    await waitStatus(t, 'group_snapshots', cgs, 'available');
    expect((await t.request('GET', `/v3/cgsnapshots/${cgs}`)).body.cgsnapshot).toMatchObject({
      id: cgs,
      consistencygroup_id: cg,
      status: 'available',
    });
    const listed = (await t.request('GET', '/v3/cgsnapshots/detail')).body.cgsnapshots as { id: string }[];
    expect(listed.map((x) => x.id)).toContain(cgs);

    const copy = await t.request('POST', '/v3/consistencygroups/create_from_src', {
      'consistencygroup-from-src': { cgsnapshot_id: cgs, name: 'copy' },
    });
    expect(copy.status, JSON.stringify(copy.body)).toBe(202);
    await waitStatus(t, 'groups', copy.body.consistencygroup.id, 'available');
    const copies = (
      (await t.request('GET', '/v3/volumes/detail')).body.volumes as { id: string; consistencygroup_id: string | null }[]
    ).filter((x) => x.consistencygroup_id === copy.body.consistencygroup.id);
    expect(copies).toHaveLength(1);
    await waitStatus(t, 'volumes', copies[0]!.id, 'available');

    const deleteCg = async (id: string) => {
      expect((await t.request('POST', `/v3/consistencygroups/${id}/delete`, { consistencygroup: { force: true } })).status).toBe(202);
      await waitStatus(t, 'groups', id, 'gone');
    };
    await deleteCg(copy.body.consistencygroup.id);
    expect((await t.request('DELETE', `/v3/cgsnapshots/${cgs}`)).status).toBe(202);
    await waitStatus(t, 'group_snapshots', cgs, 'gone');
    await deleteCg(cg);
    await waitStatus(t, 'volumes', v.body.volume.id, 'gone');
  });
});
