/**
 * The OpenAPI document (GET /openapi.json, src/api/openapi/): it is valid
 * OpenAPI 3.1, lists exactly the routes the app serves, its schemas compile, its Tempest part is
 * the installed Tempest's, and the answers of a walk through every documented
 * route keep it — checked the way Tempest checks Cinder, by
 * test/helpers/openapi.ts, which is shown to catch a broken answer.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { DOCUMENTED } from '../../src/api/openapi/document.ts';
import { ROUTES_NOT_IMPLEMENTED } from '../../src/api/not-implemented.ts';
import { PosixBackupStore } from '../../src/backup/posix.ts';
import { availableVolume, PROJECT, useApp, waitStatus, type Reply } from '../helpers/app.ts';
import { ContractCheck } from '../helpers/openapi.ts';

const t = useApp({ backupStore: new PosixBackupStore({ root: mkdtempSync(join(tmpdir(), 'volstate-openapi-backups-')) }) });
const ROOT = join(import.meta.dirname, '..', '..');
const OTHER = 'fedcba9876543210fedcba9876543210';
const SERVER = '11111111-2222-4333-8444-555555555555';

async function contract(): Promise<{ doc: any; check: ContractCheck }> {
  const res = await t.request('GET', '/openapi.json');
  expect(res.status).toBe(200);
  return { doc: res.body, check: new ContractCheck(res.body as never) };
}

describe('the OpenAPI document', () => {
  it('lists every route the app serves, and only those', async () => {
    const served = new Set(t.app.routeTable.map((r) => `${r.method} ${r.url}`));
    const resources = [...served].filter((r) => /^\w+ \/v3\/:project_id\//.test(r)).map((r) => r.replace('/v3/:project_id', ''));
    const others = [...served].filter((r) => !/^\w+ \/v3\/./.test(r) || r.endsWith(' /v3/'));
    expect(resources.filter((r) => !DOCUMENTED.resources.includes(r)).sort(), 'served but not documented').toEqual([]);
    expect(DOCUMENTED.resources.filter((r) => !resources.includes(r)).sort(), 'documented but not served').toEqual([]);
    expect(others.filter((r) => !DOCUMENTED.others.includes(r)).sort(), 'served but not documented').toEqual([]);
    expect(DOCUMENTED.others.filter((r) => !others.includes(r)).sort(), 'documented but not served').toEqual([]);

    const { doc } = await contract();
    expect(doc.openapi).toBe('3.1.0');
    // Valid against the OpenAPI Initiative's 3.1 schema.
    const validator = new Validator();
    const valid = await validator.validate(structuredClone(doc));
    expect(valid.errors, 'the OpenAPI 3.1 schema').toBeUndefined();
    expect([valid.valid, validator.version]).toEqual([true, '3.1']);
    const operations = Object.values(doc.paths as Record<string, object>).flatMap((p) => Object.keys(p));
    expect(operations.length).toBe(resources.length + others.length);
    const ids = Object.values(doc.paths as Record<string, Record<string, { operationId: string }>>).flatMap((p) =>
      Object.values(p).map((o) => o.operationId),
    );
    expect(new Set(ids).size, 'operationIds are unique').toBe(ids.length);
  });

  it('catches an answer that breaks the contract (a volume without its status, a fault in another shape, an unlisted status)', async () => {
    const { check } = await contract();
    const id = await availableVolume(t);
    const shown = await t.request('GET', `/v3/volumes/${id}`);
    expect(check.check('GET', `/v3/${PROJECT}/volumes/${id}`, 200, shown.body, 'application/json')).toBeUndefined();
    const broken = structuredClone(shown.body) as { volume: Record<string, unknown> };
    delete broken.volume.status;
    expect(check.check('GET', `/v3/volumes/${id}`, 200, broken, 'application/json')).toMatch(/status/);
    expect(check.check('GET', `/v3/volumes/${id}`, 200, { ...shown.body, extra: 1 }, 'application/json')).toMatch(/additional/);
    expect(check.check('GET', `/v3/volumes/${id}`, 404, { error: 'gone' }, 'application/json')).toMatch(/default/);
    expect(check.check('GET', `/v3/volumes/${id}`, 201, shown.body, 'application/json')).toMatch(/does not list/);
  });

  it('keeps its Tempest schemas equal to the installed Tempest’s', { timeout: 60_000 }, () => {
    if (!existsSync('/usr/lib/python3/dist-packages/tempest')) {
      // .ci/run installs Tempest; a machine without it cannot regenerate the file.
      console.warn('Tempest is not installed (apt-get install tempest): the drift check of tempest-schemas.json is skipped');
      return;
    }
    const r = spawnSync('/usr/bin/python3', [join(ROOT, 'scripts', 'tempest-schemas.py')], { encoding: 'utf8' });
    expect(r.status, r.stderr).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(JSON.parse(readFileSync(join(ROOT, 'src', 'api', 'openapi', 'tempest-schemas.json'), 'utf8')));
  });

  it('is kept by every answer of a walk through the documented routes', { timeout: 120_000 }, async () => {
    const { doc, check } = await contract();
    const broken: string[] = [];
    const call = async (method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply<any>> => {
      const res = await t.request(method, path, body, headers);
      const type = res.headers['content-type'];
      const wrong = check.check(method, path, res.status, res.body, typeof type === 'string' ? type : undefined);
      if (wrong) broken.push(wrong);
      return res;
    };
    const ok = (res: Reply<any>, what: string) => {
      if (res.status >= 300 && res.status !== 300) throw new Error(`${what}: ${res.status} ${JSON.stringify(res.body)}`);
      return res.body;
    };

    // The versions, the operator's routes.
    for (const path of ['/', '/v3', '/v3/', '/healthz', '/readyz', '/ui/state', '/openapi.json']) await call('GET', path);

    // Types, QoS, and a volume of that type.
    const type = ok(await call('POST', '/v3/types', { volume_type: { name: 'gold' } }), 'type').volume_type;
    await call('GET', '/v3/types');
    await call('GET', `/v3/types/${type.id}`);
    await call('GET', '/v3/types/default');
    await call('PUT', `/v3/types/${type.id}`, { volume_type: { description: 'the good one' } });
    await call('GET', `/v3/types/${type.id}/extra_specs`);
    await call('POST', `/v3/types/${type.id}/extra_specs`, { extra_specs: { a: 'b' } });
    await call('GET', `/v3/types/${type.id}/extra_specs/a`);
    await call('PUT', `/v3/types/${type.id}/extra_specs/a`, { a: 'c' });
    await call('DELETE', `/v3/types/${type.id}/extra_specs/a`);
    await call('GET', `/v3/types/${type.id}/encryption`);
    await call('PUT', `/v3/default-types/${OTHER}`, { default_type: { volume_type: type.id } });
    await call('GET', `/v3/default-types/${OTHER}`);
    await call('GET', '/v3/default-types');
    await call('DELETE', `/v3/default-types/${OTHER}`);
    const secret = ok(await call('POST', '/v3/types', { volume_type: { name: 'secret' } }), 'type').volume_type;
    const enc = ok(
      await call('POST', `/v3/types/${secret.id}/encryption`, {
        encryption: { provider: 'luks', control_location: 'front-end', cipher: 'aes-xts-plain64', key_size: 256 },
      }),
      'encryption',
    ).encryption;
    await call('GET', `/v3/types/${secret.id}/encryption`);
    await call('GET', `/v3/types/${secret.id}/encryption/cipher`);
    await call('PUT', `/v3/types/${secret.id}/encryption/${enc.encryption_id}`, { encryption: { key_size: 128 } });
    await call('DELETE', `/v3/types/${secret.id}/encryption/${enc.encryption_id}`);
    await call('DELETE', `/v3/types/${secret.id}`);
    const hidden = ok(
      await call('POST', '/v3/types', { volume_type: { name: 'private', 'os-volume-type-access:is_public': false } }),
      'private',
    ).volume_type;
    await call('POST', `/v3/types/${hidden.id}/action`, { addProjectAccess: { project: OTHER } });
    await call('GET', `/v3/types/${hidden.id}/os-volume-type-access`);
    await call('POST', `/v3/types/${hidden.id}/action`, { removeProjectAccess: { project: OTHER } });
    await call('DELETE', `/v3/types/${hidden.id}`);
    const qos = ok(await call('POST', '/v3/qos-specs', { qos_specs: { name: 'fast', total_iops_sec: '500' } }), 'qos').qos_specs;
    await call('GET', '/v3/qos-specs');
    await call('GET', `/v3/qos-specs/${qos.id}`);
    await call('PUT', `/v3/qos-specs/${qos.id}`, { qos_specs: { read_iops_sec: '100' } });
    await call('PUT', `/v3/qos-specs/${qos.id}/delete_keys`, { keys: ['read_iops_sec'] });
    await call('GET', `/v3/qos-specs/${qos.id}/associate?vol_type_id=${type.id}`);
    await call('GET', `/v3/qos-specs/${qos.id}/associations`);
    await call('GET', `/v3/qos-specs/${qos.id}/disassociate?vol_type_id=${type.id}`);
    await call('GET', `/v3/qos-specs/${qos.id}/disassociate_all`);
    await call('DELETE', `/v3/qos-specs/${qos.id}`);

    // Volumes: create, show, list, change, act.
    const made = ok(
      await call('POST', '/v3/volumes', { volume: { size: 1, name: 'v', volume_type: 'gold', metadata: { a: '1' } } }),
      'create',
    );
    const id = made.volume.id as string;
    await waitStatus(t, 'volumes', id, 'available');
    await call('GET', `/v3/volumes/${id}`);
    await call('GET', `/v3/${PROJECT}/volumes/${id}`);
    await call('GET', '/v3/volumes');
    await call('GET', '/v3/volumes/detail?limit=1');
    await call('GET', '/v3/volumes/summary');
    await call('PUT', `/v3/volumes/${id}`, { volume: { name: 'renamed', description: 'd' } });
    await call('GET', `/v3/volumes/${id}/metadata`);
    await call('POST', `/v3/volumes/${id}/metadata`, { metadata: { b: '2' } });
    await call('PUT', `/v3/volumes/${id}/metadata`, { metadata: { c: '3' } });
    await call('GET', `/v3/volumes/${id}/metadata/c`);
    await call('PUT', `/v3/volumes/${id}/metadata/c`, { meta: { c: '4' } });
    await call('DELETE', `/v3/volumes/${id}/metadata/c`);
    await call('GET', `/v3/volumes/${id}/transitions`);
    await call('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } });
    await waitStatus(t, 'volumes', id, 'available');
    await call('POST', `/v3/volumes/${id}/action`, { 'os-set_bootable': { bootable: true } });
    await call('POST', `/v3/volumes/${id}/action`, { 'os-update_readonly_flag': { readonly: false } });
    await call('POST', `/v3/volumes/${id}/action`, { 'os-reserve': null });
    await call('POST', `/v3/volumes/${id}/action`, { 'os-unreserve': null });
    await call('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status: 'available' } });
    await call('POST', `/v3/volumes/${id}/action`, { 'os-initialize_connection': { connector: { host: 'h1' } } });
    await call('POST', `/v3/volumes/${id}/action`, { 'os-terminate_connection': { connector: { host: 'h1' } } });

    // Snapshots.
    const snap = ok(
      await call('POST', '/v3/snapshots', { snapshot: { volume_id: id, name: 's', metadata: { x: 'y' } } }),
      'snapshot',
    ).snapshot;
    await waitStatus(t, 'snapshots', snap.id, 'available');
    await call('GET', `/v3/snapshots/${snap.id}`);
    await call('GET', '/v3/snapshots');
    await call('GET', '/v3/snapshots/detail');
    await call('PUT', `/v3/snapshots/${snap.id}`, { snapshot: { name: 's2' } });
    await call('GET', `/v3/snapshots/${snap.id}/metadata`);
    await call('POST', `/v3/snapshots/${snap.id}/metadata`, { metadata: { p: 'q' } });
    await call('PUT', `/v3/snapshots/${snap.id}/metadata`, { metadata: { r: 's' } });
    await call('GET', `/v3/snapshots/${snap.id}/metadata/r`);
    await call('PUT', `/v3/snapshots/${snap.id}/metadata/r`, { meta: { r: 't' } });
    await call('DELETE', `/v3/snapshots/${snap.id}/metadata/r`);
    await call('GET', `/v3/snapshots/${snap.id}/transitions`);
    await call('POST', `/v3/snapshots/${snap.id}/action`, { 'os-reset_status': { status: 'available' } });
    await call('DELETE', `/v3/snapshots/${snap.id}`);
    await waitStatus(t, 'snapshots', snap.id, 'gone');

    // Backups.
    const backup = ok(await call('POST', '/v3/backups', { backup: { volume_id: id, name: 'b', metadata: { x: 'y' } } }), 'backup').backup;
    await waitStatus(t, 'backups', backup.id, 'available');
    await call('GET', `/v3/backups/${backup.id}`);
    await call('GET', '/v3/backups');
    await call('GET', '/v3/backups/detail');
    await call('PUT', `/v3/backups/${backup.id}`, { backup: { name: 'b2', metadata: { r: 's' } } });
    await call('GET', `/v3/backups/${backup.id}/transitions`);
    await call('POST', `/v3/backups/${backup.id}/restore`, { restore: { volume_id: id } });
    await waitStatus(t, 'volumes', id, 'available');
    await waitStatus(t, 'backups', backup.id, 'available');
    await call('POST', `/v3/backups/${backup.id}/action`, { 'os-reset_status': { status: 'available' } });
    const record = ok(await call('GET', `/v3/backups/${backup.id}/export_record`), 'backup-record')['backup-record'];
    const fields = JSON.parse(Buffer.from(record.backup_url, 'base64').toString());
    const url = Buffer.from(JSON.stringify({ ...fields, id: crypto.randomUUID() })).toString('base64');
    const imported = ok(
      await call('POST', '/v3/backups/import_record', { 'backup-record': { ...record, backup_url: url } }),
      'backup',
    ).backup;
    await waitStatus(t, 'backups', imported.id, 'available');
    await call('DELETE', `/v3/backups/${backup.id}`);
    await waitStatus(t, 'backups', backup.id, 'gone');

    // Attachments (3.27, 3.44).
    const attachment = ok(
      await call('POST', '/v3/attachments', { attachment: { volume_uuid: id, instance_uuid: SERVER } }),
      'attachment',
    ).attachment;
    await call('PUT', `/v3/attachments/${attachment.id}`, { attachment: { connector: { host: 'h1', initiator: 'iqn.x' } } });
    await call('POST', `/v3/attachments/${attachment.id}/action`, { 'os-complete': null });
    await call('GET', '/v3/attachments');
    await call('GET', '/v3/attachments/detail');
    await call('GET', `/v3/attachments/${attachment.id}`);
    await call('GET', `/v3/attachments/${attachment.id}/transitions`);
    await call('GET', `/v3/volumes/${id}`); // in-use, with its attachment
    await call('DELETE', `/v3/attachments/${attachment.id}`);
    await waitStatus(t, 'volumes', id, 'available');

    // Transfers, on both paths; the second is accepted by another project.
    const legacy = ok(
      await call('POST', '/v3/os-volume-transfer', { transfer: { volume_id: id } }, { 'openstack-api-version': 'volume 3.0' }),
      'legacy',
    ).transfer;
    for (const path of ['/v3/os-volume-transfer', '/v3/os-volume-transfer/detail', `/v3/os-volume-transfer/${legacy.id}`]) {
      await call('GET', path, undefined, { 'openstack-api-version': 'volume 3.0' });
    }
    await call('DELETE', `/v3/os-volume-transfer/${legacy.id}`, undefined, { 'openstack-api-version': 'volume 3.0' });
    const offer = ok(await call('POST', '/v3/volume-transfers', { transfer: { volume_id: id, name: 'gift' } }), 'offer').transfer;
    for (const path of ['/v3/volume-transfers', '/v3/volume-transfers/detail', `/v3/volume-transfers/${offer.id}`]) await call('GET', path);
    await call(
      'POST',
      `/v3/volume-transfers/${offer.id}/accept`,
      { accept: { auth_key: offer.auth_key } },
      { 'x-auth-token': `admin:${OTHER}` },
    );
    const second = ok(
      await call('POST', '/v3/volume-transfers', { transfer: { volume_id: id } }, { 'x-auth-token': `admin:${OTHER}` }),
      'offer',
    ).transfer;
    await call('DELETE', `/v3/volume-transfers/${second.id}`, undefined, { 'x-auth-token': `admin:${OTHER}` });
    await call(
      'POST',
      '/v3/os-volume-transfer/00000000-0000-4000-8000-000000000000/accept',
      { accept: { auth_key: 'x' } },
      { 'openstack-api-version': 'volume 3.0' },
    );

    // Quotas, limits, services, messages.
    await call('GET', `/v3/os-quota-sets/${PROJECT}`);
    await call('GET', `/v3/os-quota-sets/${PROJECT}?usage=true`);
    await call('GET', `/v3/os-quota-sets/${PROJECT}/defaults`);
    await call('PUT', `/v3/os-quota-sets/${OTHER}`, { quota_set: { volumes: 20 } });
    await call('DELETE', `/v3/os-quota-sets/${OTHER}`);
    await call('GET', '/v3/os-quota-class-sets/default');
    await call('PUT', '/v3/os-quota-class-sets/default', { quota_class_set: { volumes: 30 } });
    await call('GET', '/v3/limits');
    const services = ok(await call('GET', '/v3/os-services'), 'services').services as { host: string; binary: string }[];
    const volumeService = services.find((s) => s.binary === 'cinder-volume')!;
    await call('PUT', '/v3/os-services/disable', { host: volumeService.host, binary: 'cinder-volume' });
    await call('PUT', '/v3/os-services/disable-log-reason', {
      host: volumeService.host,
      binary: 'cinder-volume',
      disabled_reason: 'maintenance',
    });
    await call('PUT', '/v3/os-services/enable', { host: volumeService.host, binary: 'cinder-volume' });
    await call('PUT', '/v3/os-services/freeze', { host: volumeService.host });
    await call('PUT', '/v3/os-services/thaw', { host: volumeService.host });
    const hosts = ok(await call('GET', '/v3/os-hosts'), 'hosts').hosts as { host_name: string }[];
    await call('GET', `/v3/os-hosts/${hosts[0]!.host_name}`);
    await call('GET', '/v3/scheduler-stats/get_pools');
    const pools = ok(await call('GET', '/v3/scheduler-stats/get_pools?detail=true'), 'pools').pools as { name: string }[];
    await call('GET', `/v3/capabilities/${encodeURIComponent(pools[0]!.name.split('#')[0]!)}`);
    await call('GET', '/v3/os-availability-zone');
    await call('GET', '/v3/extensions');
    const messages = ok(await call('GET', '/v3/messages'), 'messages').messages as { id: string }[];
    if (messages[0]) {
      await call('GET', `/v3/messages/${messages[0].id}`);
      await call('DELETE', `/v3/messages/${messages[0].id}`);
    }

    // Refusals: Cinder's fault shape.
    await call('GET', '/v3/volumes/00000000-0000-4000-8000-000000000000');
    await call('POST', '/v3/volumes', { volume: { size: -1 } });
    await call('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 1 } });

    // Group types, a group with a volume, a group snapshot (3.11–3.20).
    const gt = ok(
      await call('POST', '/v3/group_types', { group_type: { name: 'walk', group_specs: { a: 'b' } } }),
      'group type',
    ).group_type;
    await call('GET', '/v3/group_types');
    await call('GET', '/v3/group_types/default');
    await call('GET', `/v3/group_types/${gt.id}`);
    await call('PUT', `/v3/group_types/${gt.id}`, { group_type: { description: 'walked' } });
    await call('GET', `/v3/group_types/${gt.id}/group_specs`);
    await call('POST', `/v3/group_types/${gt.id}/group_specs`, { group_specs: { c: 'd' } });
    await call('GET', `/v3/group_types/${gt.id}/group_specs/c`);
    await call('PUT', `/v3/group_types/${gt.id}/group_specs/c`, { c: 'e' });
    await call('DELETE', `/v3/group_types/${gt.id}/group_specs/c`);
    const group = ok(
      await call('POST', '/v3/groups', { group: { name: 'walk', group_type: gt.id, volume_types: [type.id] } }),
      'group',
    ).group;
    await waitStatus(t, 'groups', group.id, 'available');
    const member = await availableVolume(t, 1, { volume_type: type.id, group_id: group.id });
    await call('GET', '/v3/groups');
    await call('GET', '/v3/groups/detail?list_volume=True');
    await call('GET', `/v3/groups/${group.id}`);
    await call('PUT', `/v3/groups/${group.id}`, { group: { description: 'walked' } });
    await call('GET', `/v3/groups/${group.id}/transitions`);
    const gs = ok(
      await call('POST', '/v3/group_snapshots', { group_snapshot: { group_id: group.id, name: 'walk' } }),
      'group snapshot',
    ).group_snapshot;
    await waitStatus(t, 'group_snapshots', gs.id, 'available');
    await call('GET', '/v3/group_snapshots');
    await call('GET', '/v3/group_snapshots/detail');
    await call('GET', `/v3/group_snapshots/${gs.id}`);
    await call('GET', `/v3/group_snapshots/${gs.id}/transitions`);
    await call('POST', `/v3/group_snapshots/${gs.id}/action`, { reset_status: { status: 'available' } });
    const copy = ok(
      await call('POST', '/v3/groups/action', { 'create-from-src': { group_snapshot_id: gs.id, name: 'copy' } }),
      'copy',
    ).group;
    await waitStatus(t, 'groups', copy.id, 'available');
    const copied = ok(await call('GET', `/v3/volumes/detail?group_id=${copy.id}`), 'copied').volumes as { id: string }[];
    for (const v of copied) await waitStatus(t, 'volumes', v.id, 'available');
    await call('POST', `/v3/groups/${copy.id}/action`, { delete: { 'delete-volumes': true } });
    for (const v of copied) await waitStatus(t, 'volumes', v.id, 'gone');
    await waitStatus(t, 'groups', copy.id, 'gone');
    await call('DELETE', `/v3/group_snapshots/${gs.id}`);
    await waitStatus(t, 'group_snapshots', gs.id, 'gone');
    await call('POST', `/v3/groups/${group.id}/action`, { reset_status: { status: 'available' } });
    await call('POST', `/v3/groups/${group.id}/action`, { delete: { 'delete-volumes': true } });
    await waitStatus(t, 'volumes', member, 'gone');
    await waitStatus(t, 'groups', group.id, 'gone');
    await call('DELETE', `/v3/group_types/${gt.id}`);

    // The consistency group API, served from groups.
    const cg = ok(
      await call('POST', '/v3/consistencygroups', { consistencygroup: { name: 'cg', volume_types: type.id } }),
      'cg',
    ).consistencygroup;
    await waitStatus(t, 'groups', cg.id, 'available');
    const cgVolume = await availableVolume(t, 1, { volume_type: type.id, consistencygroup_id: cg.id });
    await call('GET', '/v3/consistencygroups');
    await call('GET', '/v3/consistencygroups/detail');
    await call('GET', `/v3/consistencygroups/${cg.id}`);
    await call('PUT', `/v3/consistencygroups/${cg.id}/update`, { consistencygroup: { description: 'walked' } });
    const cgs = ok(await call('POST', '/v3/cgsnapshots', { cgsnapshot: { consistencygroup_id: cg.id, name: 'cgs' } }), 'cgs').cgsnapshot;
    await waitStatus(t, 'group_snapshots', cgs.id, 'available');
    await call('GET', '/v3/cgsnapshots');
    await call('GET', '/v3/cgsnapshots/detail');
    await call('GET', `/v3/cgsnapshots/${cgs.id}`);
    const cgCopy = ok(
      await call('POST', '/v3/consistencygroups/create_from_src', { 'consistencygroup-from-src': { source_cgid: cg.id, name: 'copy' } }),
      'cg copy',
    ).consistencygroup;
    await waitStatus(t, 'groups', cgCopy.id, 'available');
    const cgCopies = ok(await call('GET', `/v3/volumes/detail?group_id=${cgCopy.id}`), 'cg copies').volumes as { id: string }[];
    for (const v of cgCopies) await waitStatus(t, 'volumes', v.id, 'available');
    await call('POST', `/v3/consistencygroups/${cgCopy.id}/delete`, { consistencygroup: { force: true } });
    await call('DELETE', `/v3/cgsnapshots/${cgs.id}`);
    await waitStatus(t, 'group_snapshots', cgs.id, 'gone');
    await call('POST', `/v3/consistencygroups/${cg.id}/delete`, { consistencygroup: { force: true } });
    await waitStatus(t, 'volumes', cgVolume, 'gone');
    for (const v of cgCopies) await waitStatus(t, 'volumes', v.id, 'gone');
    await waitStatus(t, 'groups', cg.id, 'gone');
    await waitStatus(t, 'groups', cgCopy.id, 'gone');

    // What volstate does not implement: a 404 in the fault shape, naming it.
    for (const route of Object.keys(ROUTES_NOT_IMPLEMENTED)) {
      const [method, url] = route.split(' ') as [string, string];
      await call(method, `/v3${url.replace(/:\w+/g, 'x')}`, method === 'GET' ? undefined : {});
    }

    // And the rest: a delete, types and all.
    await call('DELETE', `/v3/volumes/${id}`, undefined, { 'x-auth-token': `admin:${OTHER}` });
    await call('DELETE', `/v3/types/${type.id}`);

    expect(broken).toEqual([]);
    // The walk reached every documented operation but the ones that are not JSON.
    const documented = Object.entries(doc.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`),
    );
    const notJson = ['GET /metrics', 'GET /diagrams', 'GET /diagrams/{file}', 'GET /ui', 'GET /openapi', 'GET /v3/{project_id}/events'];
    if (!messages[0]) notJson.push('GET /v3/{project_id}/messages/{id}', 'DELETE /v3/{project_id}/messages/{id}');
    expect(documented.filter((op) => !check.seen.has(op) && !notJson.includes(op)).sort(), 'documented but not walked').toEqual([]);
  });
});
