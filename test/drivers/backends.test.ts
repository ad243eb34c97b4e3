/**
 * Several backends: two file backends in two directories. The scheduling
 * step puts a volume on a backend whose capabilities satisfy its type's
 * extra specs (Cinder's CapabilitiesFilter), with room, the most free
 * first; a clone or a volume from a snapshot goes where its source is; a
 * type no backend satisfies leaves the volume in `error`; every later
 * operation reaches the volume's own backend.
 */
import { existsSync, mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Coordination } from '../../src/coordination/locks.ts';
import { Backends, specMatches, unmetSpec } from '../../src/drivers/backends.ts';
import { FileDriver } from '../../src/drivers/file.ts';
import { useApp, waitStatus } from '../helpers/app.ts';

const root = mkdtempSync(join(tmpdir(), 'volstate-backends-'));
const coordination = new Coordination({ dir: join(root, 'locks') });
const dirs = { gold: join(root, 'gold'), iron: join(root, 'iron') };
const backends = new Backends([
  { name: 'gold', driver: new FileDriver({ dir: dirs.gold, coordination, capacityGb: 50 }) },
  { name: 'iron', driver: new FileDriver({ dir: dirs.iron, coordination, capacityGb: 100 }) },
]);
const t = useApp({ backends });

/** The backend directory holding a volume's file. */
const whereIs = (id: string) =>
  Object.entries(dirs)
    .filter(([, dir]) => existsSync(dir) && readdirSync(dir, { recursive: true }).some((f) => String(f).includes(id)))
    .map(([name]) => name);

async function typeWith(name: string, specs: Record<string, string>) {
  const res = await t.request('POST', '/v3/types', { volume_type: { name, extra_specs: specs } });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  return res.body.volume_type.id as string;
}

async function create(volume: Record<string, unknown>, status = 'available') {
  const res = await t.request('POST', '/v3/volumes', { volume: { size: 1, ...volume } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  return waitStatus(t, 'volumes', res.body.volume.id, status);
}

describe("Cinder's extra-spec operators", () => {
  it('match as the CapabilitiesFilter does', () => {
    expect(specMatches(true, '<is> True')).toBe(true);
    expect(specMatches(false, '<is> True')).toBe(false);
    expect(specMatches('file', '<or> iscsi <or> file')).toBe(true);
    expect(specMatches(100, '>= 50')).toBe(true);
    expect(specMatches(10, '>= 50')).toBe(false);
    expect(specMatches('gold', 'gold')).toBe(true);
    expect(
      unmetSpec({ 'capabilities:storage_protocol': 'file', 'vendor:anything': 'ignored' }, { storage_protocol: 'file' }),
    ).toBeUndefined();
    expect(unmetSpec({ spec1: 'val1' }, { storage_protocol: 'file' })).toBe('spec1=val1');
  });
});

describe('two file backends', () => {
  it('volume_backend_name and capabilities choose the backend; the rest goes to the most free', async () => {
    const onGold = await create({ volume_type: await typeWith('on-gold', { volume_backend_name: 'gold' }) });
    const onIron = await create({
      volume_type: await typeWith('on-iron', { 'capabilities:volume_backend_name': 'iron', multiattach: '<is> True' }),
    });
    const anywhere = await create({});
    expect(whereIs(onGold.id)).toEqual(['gold']);
    expect(whereIs(onIron.id)).toEqual(['iron']);
    // iron reports 100 GiB, gold 50: the most free wins.
    expect(whereIs(anywhere.id)).toEqual(['iron']);
    expect(onGold['os-vol-host-attr:host']).toMatch(/@gold#gold$/);
    expect(onIron.multiattach).toBe(true);
  });

  it('a clone and a volume from a snapshot go where their source is; extend, snapshot and delete reach its backend', async () => {
    const source = await create({ volume_type: await typeWith('src-gold', { volume_backend_name: 'gold' }) });
    const clone = await create({ source_volid: source.id });
    expect(whereIs(clone.id)).toEqual(['gold']);
    const snap = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: source.id } });
    await waitStatus(t, 'snapshots', snap.body.snapshot.id, 'available');
    expect(whereIs(snap.body.snapshot.id)).toEqual(['gold']);
    const fromSnap = await create({ snapshot_id: snap.body.snapshot.id });
    expect(whereIs(fromSnap.id)).toEqual(['gold']);
    expect((await t.request('POST', `/v3/volumes/${clone.id}/action`, { 'os-extend': { new_size: 2 } })).status).toBe(202);
    expect((await waitStatus(t, 'volumes', clone.id, 'available')).size).toBe(2);
    expect((await t.request('DELETE', `/v3/volumes/${clone.id}`)).status).toBe(202);
    await waitStatus(t, 'volumes', clone.id, 'gone');
    expect(whereIs(clone.id)).toEqual([]);
  });

  it('a type no backend satisfies leaves the volume in error; a retype the backend does not satisfy is 400', async () => {
    const nowhere = await create({ volume_type: await typeWith('nowhere', { storage_protocol: 'iSCSI' }) }, 'error');
    expect(whereIs(nowhere.id)).toEqual([]);
    // The project is told why, in a user message (3.3), which it may delete.
    const messages = (await t.request('GET', '/v3/messages')).body.messages as {
      id: string;
      resource_uuid: string;
      user_message: string;
      event_id: string;
    }[];
    const told = messages.find((m) => m.resource_uuid === nowhere.id)!;
    expect(told).toMatchObject({ event_id: 'VOLUME_VOLUME_001_002', message_level: 'ERROR', resource_type: 'VOLUME' });
    expect(told.user_message).toBe(
      'schedule allocate volume:No valid backend was found: gold does not satisfy storage_protocol=iSCSI; iron does not satisfy storage_protocol=iSCSI.',
    );
    expect((await t.request('GET', `/v3/messages/${told.id}`)).body.message.request_id).toMatch(/^req-/);
    expect((await t.request('GET', '/v3/messages', undefined, { 'openstack-api-version': 'volume 3.2' })).status).toBe(404);
    expect((await t.request('DELETE', `/v3/messages/${told.id}`)).status).toBe(204);
    expect((await t.request('GET', `/v3/messages/${told.id}`)).status).toBe(404);
    const tooBig = await create({ size: 70, volume_type: await typeWith('big-gold', { volume_backend_name: 'gold' }) }, 'error');
    expect(whereIs(tooBig.id)).toEqual([]);
    const vol = await create({ volume_type: await typeWith('plain-gold', { volume_backend_name: 'gold' }) });
    const refused = await t.request('POST', `/v3/volumes/${vol.id}/action`, {
      'os-retype': { new_type: await typeWith('to-iron', { volume_backend_name: 'iron' }) },
    });
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toContain('volume_backend_name=iron');
    expect(
      (
        await t.request('POST', `/v3/volumes/${vol.id}/action`, {
          'os-retype': { new_type: await typeWith('also-gold', { volume_backend_name: 'gold' }) },
        })
      ).status,
    ).toBe(202);
  });

  it('lists a pool and a volume service per backend', async () => {
    const pools = (await t.request('GET', '/v3/scheduler-stats/get_pools?detail=True')).body.pools as {
      name: string;
      capabilities: Record<string, unknown>;
    }[];
    expect(pools.map((p) => p.name.split('#')[1]).sort()).toEqual(['gold', 'iron']);
    expect(pools.find((p) => p.name.endsWith('#gold'))!.capabilities).toMatchObject({ volume_backend_name: 'gold', total_capacity_gb: 50 });
    const services = (await t.request('GET', '/v3/os-services?binary=cinder-volume')).body.services as { host: string }[];
    expect(services.map((s) => s.host.split('@')[1]).sort()).toEqual(['gold', 'iron']);
  });
});
