/**
 * Backups through the API, with a real worker on the file driver and the
 * posix store on disk: the bytes a restore writes are the bytes the backup
 * read (full, then incremental), a volume from a backup (3.47) too; the
 * backup lease blocks deleting its source and nothing else; an incremental
 * holds its parent; the views carry exactly Tempest's keys.
 */
import { mkdtempSync, readdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PosixBackupStore } from '../../src/backup/posix.ts';
import { Coordination } from '../../src/coordination/locks.ts';
import { Backends } from '../../src/drivers/backends.ts';
import { FileDriver } from '../../src/drivers/file.ts';
import { availableVolume, useApp, waitStatus, type TestApp } from '../helpers/app.ts';

const root = mkdtempSync(join(tmpdir(), 'volstate-backups-'));
const driver = new FileDriver({
  dir: join(root, 'volumes'),
  coordination: new Coordination({ dir: join(root, 'locks') }),
  capacityGb: 100,
});
const store = new PosixBackupStore({ root: join(root, 'backups'), chunkBytes: 1024 * 1024, blockBytes: 32 * 1024 });
const t = useApp({ backends: Backends.single(driver), backupStore: store });
/** the same database schema, no worker: what is in flight stays in flight */
const still = useApp({ worker: false });

const MiB = 1024 * 1024;
/** another project (noauth: an admin of it, which sees its own project's lists and parents) */
const OTHER = { 'x-auth-token': 'someone:otherproject' };

async function write(volumeId: string, offset: number, text: string) {
  const f = await open(driver.volumePath(volumeId), 'r+');
  await f.write(Buffer.from(text), 0, text.length, offset);
  await f.close();
}

async function read(volumeId: string, offset: number, length: number): Promise<string> {
  const f = await open(driver.volumePath(volumeId), 'r');
  const buf = Buffer.alloc(length);
  await f.read(buf, 0, length, offset);
  await f.close();
  return buf.toString();
}

async function backupOf(app: TestApp, volumeId: string, extra: Record<string, unknown> = {}, headers?: Record<string, string>) {
  const res = await app.request('POST', '/v3/backups', { backup: { volume_id: volumeId, name: 'b', ...extra } }, headers);
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  expect(Object.keys(res.body.backup).sort()).toEqual(['id', 'links', 'name']);
  return res.body.backup.id as string;
}

/** The project's user message about a resource (GET /messages). */
async function messageAbout(id: string): Promise<Record<string, unknown> | undefined> {
  const res = await t.request('GET', '/v3/messages', undefined, { 'openstack-api-version': 'volume 3.70' });
  return (res.body.messages as { resource_uuid: string }[]).find((m) => m.resource_uuid === id);
}

/** Tempest's common_show_backup: these keys and no others (3.70, admin). */
const DETAIL_KEYS = [
  'availability_zone',
  'container',
  'created_at',
  'data_timestamp',
  'description',
  'fail_reason',
  'has_dependent_backups',
  'id',
  'is_incremental',
  'links',
  'metadata',
  'name',
  'object_count',
  'os-backup-project-attr:project_id',
  'size',
  'snapshot_id',
  'status',
  'updated_at',
  'user_id',
  'volume_id',
];

describe('backups', () => {
  it('back up a volume and restore its bytes: full, incremental, into a new volume, onto the source, and as a volume from a backup (3.47)', async () => {
    const volumeId = await availableVolume(t, 1, { metadata: { purpose: 'db' } });
    await write(volumeId, 0, 'first version');
    await write(volumeId, 700 * MiB, 'far away');

    const full = await backupOf(t, volumeId, { description: 'nightly' });
    const shown = await waitStatus(t, 'backups', full, 'available');
    expect(Object.keys(shown).sort()).toEqual(DETAIL_KEYS);
    expect(shown).toMatchObject({ volume_id: volumeId, size: 1, is_incremental: false, has_dependent_backups: false, fail_reason: null });
    expect(shown.object_count).toBeGreaterThan(0);
    expect(await waitStatus(t, 'volumes', volumeId, 'available')).toBeTruthy();

    await write(volumeId, 0, 'second version');
    const incr = await backupOf(t, volumeId, { incremental: true });
    expect(await waitStatus(t, 'backups', incr, 'available')).toMatchObject({ is_incremental: true });
    expect((await t.request('GET', `/v3/backups/${full}`)).body.backup.has_dependent_backups).toBe(true);

    // The parent cannot go while its increment exists.
    const refused = await t.request('DELETE', `/v3/backups/${full}`);
    expect(refused.status).toBe(400);
    expect(refused.body.badRequest.message).toMatch(/incremental backups exist for this backup/);

    // Into a new volume: the chain full → incremental, and the source's metadata.
    const restored = await t.request('POST', `/v3/backups/${incr}/restore`, { restore: { name: 'copy' } });
    expect(restored.status).toBe(202);
    expect(restored.body.restore).toMatchObject({ backup_id: incr, volume_name: 'copy' });
    const copyId = restored.body.restore.volume_id as string;
    const copy = await waitStatus(t, 'volumes', copyId, 'available');
    expect(copy.metadata).toEqual({ purpose: 'db', src_backup_id: incr });
    expect(await read(copyId, 0, 14)).toBe('second version');
    expect(await read(copyId, 700 * MiB, 8)).toBe('far away');
    await waitStatus(t, 'backups', incr, 'available');

    // Onto the source, from the full backup: the first version comes back.
    await write(volumeId, 700 * MiB, 'overwrite');
    const back = await t.request('POST', `/v3/backups/${full}/restore`, { restore: { volume_id: volumeId } });
    expect(back.status, JSON.stringify(back.body)).toBe(202);
    // Cinder answers the volume's name, null for a volume without one.
    expect(back.body.restore).toEqual({ backup_id: full, volume_id: volumeId, volume_name: null });
    await waitStatus(t, 'volumes', volumeId, 'available');
    expect(await read(volumeId, 0, 14)).toBe('first version\0');
    expect(await read(volumeId, 700 * MiB, 9)).toBe('far away\0');

    // 3.47: a volume from a backup, bigger than it.
    const made = await t.request('POST', '/v3/volumes', { volume: { backup_id: incr, size: 2 } });
    expect(made.status, JSON.stringify(made.body)).toBe(202);
    await waitStatus(t, 'volumes', made.body.volume.id, 'available');
    expect(await read(made.body.volume.id, 0, 14)).toBe('second version');

    // Deleted child first, then its parent: their objects are gone.
    expect((await t.request('DELETE', `/v3/backups/${incr}`)).status).toBe(202);
    await waitStatus(t, 'backups', incr, 'gone');
    expect((await t.request('DELETE', `/v3/backups/${full}`)).status).toBe(202);
    await waitStatus(t, 'backups', full, 'gone');
    const container = shown.container as string;
    expect(readdirSync(join(store.root, container))).toEqual([]);
  });

  it('exports a record and imports it (a new id on the same objects, as Tempest does): available once its objects are checked; a record whose objects are gone ends in error saying so', async () => {
    const volumeId = await availableVolume(t);
    await write(volumeId, 300 * MiB, 'exported');
    const id = await backupOf(t, volumeId, { name: 'exported' });
    await waitStatus(t, 'backups', id, 'available');
    const exported = await t.request('GET', `/v3/backups/${id}/export_record`);
    expect(exported.status).toBe(200);
    expect(exported.body['backup-record'].backup_service).toMatch(/^cinder\.backup\.drivers\./);
    const fields = JSON.parse(Buffer.from(exported.body['backup-record'].backup_url, 'base64').toString());
    expect(fields).toMatchObject({ id, display_name: 'exported', size: 1 });

    const again = await t.request('POST', '/v3/backups/import_record', { 'backup-record': exported.body['backup-record'] });
    expect(again.status).toBe(400);
    expect(again.body.badRequest.message).toMatch(/Backup already exists in database/);

    const newId = crypto.randomUUID();
    const record = (f: Record<string, unknown>) => ({
      'backup-record': { ...exported.body['backup-record'], backup_url: Buffer.from(JSON.stringify(f)).toString('base64') },
    });
    const imported = await t.request('POST', '/v3/backups/import_record', record({ ...fields, id: newId }));
    expect(imported.status, JSON.stringify(imported.body)).toBe(201);
    expect(imported.body.backup).toMatchObject({ id: newId, name: 'exported' });
    await waitStatus(t, 'backups', newId, 'available');
    const restored = await t.request('POST', `/v3/backups/${newId}/restore`, { restore: {} });
    await waitStatus(t, 'volumes', restored.body.restore.volume_id, 'available');
    expect(await read(restored.body.restore.volume_id, 300 * MiB, 8)).toBe('exported');

    const lost = crypto.randomUUID();
    const missing = await t.request(
      'POST',
      '/v3/backups/import_record',
      record({ ...fields, id: lost, service_metadata: 'volume_gone_backup_gone' }),
    );
    expect(missing.status).toBe(201);
    const failed = await waitStatus(t, 'backups', lost, 'error');
    expect(failed.fail_reason).toMatch(/has no metadata/);
    // The project is told, in Cinder's words, in the transaction of the failure.
    expect(await messageAbout(lost)).toMatchObject({
      event_id: 'VOLUME_VOLUME_BACKUP_013_020',
      resource_type: 'VOLUME_BACKUP',
      user_message: 'create backup:Backup driver failed to create backup.',
    });

    const garbage = await t.request('POST', '/v3/backups/import_record', {
      'backup-record': { ...exported.body['backup-record'], backup_url: 'not base64 json' },
    });
    expect(garbage.status).toBe(400);
    expect(garbage.body.badRequest.message).toMatch(/Can't parse backup record/);
  });

  it('a restore that meets a corrupted object ends in error_restoring, the backup available, and a message for the project', async () => {
    const source = await availableVolume(t);
    await write(source, 0, 'precious');
    const backupId = await backupOf(t, source);
    await waitStatus(t, 'backups', backupId, 'available');
    const { container } = (await t.request('GET', `/v3/backups/${backupId}`)).body.backup as { container: string };
    const dir = join(root, 'backups', container);
    const object = readdirSync(dir).find((f) => f.includes(backupId) && /-\d{5}$/.test(f))!;
    const f = await open(join(dir, object), 'r+');
    await f.write(Buffer.from([0xff, 0x00, 0xff]), 0, 3, 0);
    await f.close();
    const target = await availableVolume(t);
    const restore = await t.request('POST', `/v3/backups/${backupId}/restore`, { restore: { volume_id: target } });
    expect(restore.status).toBe(202);
    await waitStatus(t, 'volumes', target, 'error_restoring');
    await waitStatus(t, 'backups', backupId, 'available');
    expect(await messageAbout(backupId)).toMatchObject({
      event_id: 'VOLUME_VOLUME_BACKUP_015_026',
      user_message: 'restore backup:Backup driver failed to restore backup.',
      request_id: restore.headers['x-openstack-request-id'],
    });
  });

  it('takes the newest backup of the volume in the caller project as the parent, and without one refuses an incremental', async () => {
    const volumeId = await availableVolume(t);
    const none = await t.request('POST', '/v3/backups', { backup: { volume_id: volumeId, incremental: true } });
    expect(none.status).toBe(400);
    expect(none.body.badRequest.message).toBe('Invalid backup: No backups available to do an incremental backup.');
    const first = await backupOf(t, volumeId);
    await waitStatus(t, 'backups', first, 'available');
    const second = await backupOf(t, volumeId);
    await waitStatus(t, 'backups', second, 'available');
    const incr = await backupOf(t, volumeId, { incremental: 'True' });
    await waitStatus(t, 'backups', incr, 'available');
    const [a, b] = await Promise.all([first, second].map((id) => t.request('GET', `/v3/backups/${id}`)));
    expect([a!.body.backup.has_dependent_backups, b!.body.backup.has_dependent_backups]).toEqual([false, true]);
  });

  it('refuses what Cinder refuses, saying why: an in-use volume without force, a bad reset status, an unknown key', async () => {
    const volumeId = await availableVolume(t);
    const attach = await t.request('POST', '/v3/attachments', {
      attachment: { volume_uuid: volumeId, instance_uuid: crypto.randomUUID(), connector: { host: 'h', initiator: 'iqn.h' } },
    });
    expect(attach.status, JSON.stringify(attach.body)).toBe(200);
    await t.request('POST', `/v3/attachments/${attach.body.attachment.id}/action`, { 'os-complete': null });
    await waitStatus(t, 'volumes', volumeId, 'in-use');
    const noForce = await t.request('POST', '/v3/backups', { backup: { volume_id: volumeId } });
    expect(noForce.status).toBe(400);
    expect(noForce.body.badRequest.message).toMatch(/force flag/);
    const forced = await backupOf(t, volumeId, { force: true });
    await waitStatus(t, 'backups', forced, 'available');
    await waitStatus(t, 'volumes', volumeId, 'in-use');

    const bad = await t.request('POST', `/v3/backups/${forced}/action`, { 'os-reset_status': { status: 'creating' } });
    expect(bad.status).toBe(400);
    expect(bad.body.badRequest.message).toBe(
      "Invalid input received: Backup status: creating is invalid, valid statuses are: ['available', 'error'].",
    );
    const reset = await t.request('POST', `/v3/backups/${forced}/action`, { 'os-reset_status': { status: 'ERROR' } });
    expect(reset.status).toBe(202);
    expect((await t.request('GET', `/v3/backups/${forced}`)).body.backup.status).toBe('error');
    const unknown = await t.request('POST', '/v3/backups', { backup: { volume_id: volumeId, colour: 'red' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.badRequest.message).toMatch(/'colour' was unexpected/);
  });

  it("keeps another project's backups out of its incremental parents and its lists (cinder-tempest-plugin's crossproject tests)", async () => {
    const volumeId = await availableVolume(t);
    const mine = await backupOf(t, volumeId);
    await waitStatus(t, 'backups', mine, 'available');
    const theirs = await t.request('POST', '/v3/backups', { backup: { volume_id: volumeId, incremental: true } }, OTHER);
    expect(theirs.status).toBe(400);
    expect(theirs.body.badRequest.message).toMatch(/No backups available/);
    expect((await t.request('GET', '/v3/backups/detail', undefined, OTHER)).body.backups).toEqual([]);
    const all = await t.request('GET', '/v3/backups?all_tenants=1', undefined, OTHER);
    expect(all.body.backups.map((b: { id: string }) => b.id)).toContain(mine);
  });
});

describe('a backup in flight (no worker)', () => {
  it('holds its volume against deletion only: the volume shows backing-up, attaches, detaches and extends, and is 409 to delete until the backup ends', async () => {
    const res = await still.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const volumeId = res.body.volume.id as string;
    // No worker: make it available by hand (the state row is the only truth).
    await still.db.sql`UPDATE resource_states SET state = 'available' WHERE resource_id = ${volumeId}`;
    await still.backend.createVolume(volumeId, 1);
    const backupId = await backupOf(still, volumeId);
    const shown = await still.request('GET', `/v3/volumes/${volumeId}`);
    expect(shown.body.volume.status).toBe('backing-up');
    expect(shown.headers['volstate-state']).toBe('available');
    const busy = await still.request('DELETE', `/v3/volumes/${volumeId}`);
    expect(busy.status).toBe(409);
    expect(busy.body.conflictingRequest.message).toMatch(/a backup of it is being made/);
    // Attach and detach go on while the backup runs (the worker reads a still image, not the volume).
    const attached = await still.request('POST', '/v3/attachments', {
      attachment: { volume_uuid: volumeId, instance_uuid: crypto.randomUUID(), connector: { host: 'h', initiator: 'iqn.h' } },
    });
    expect(attached.status, JSON.stringify(attached.body)).toBe(200);
    expect((await still.request('POST', `/v3/attachments/${attached.body.attachment.id}/action`, { 'os-complete': null })).status).toBe(
      204,
    );
    const inUse = await still.request('GET', `/v3/volumes/${volumeId}`);
    expect([inUse.body.volume.status, inUse.headers['volstate-state']]).toEqual(['backing-up', 'in-use']);
    expect((await still.request('DELETE', `/v3/attachments/${attached.body.attachment.id}`)).status).toBe(200);
    expect((await still.request('GET', `/v3/volumes/${volumeId}`)).headers['volstate-state']).toBe('available');
    const extend = await still.request('POST', `/v3/volumes/${volumeId}/action`, { 'os-extend': { new_size: 2 } });
    expect(extend.status).toBe(202);
    // The backup's size is the volume's as it was backed up.
    expect((await still.request('GET', `/v3/backups/${backupId}`)).body.backup.size).toBe(1);
    // Reset to error ends it: the lease is given back, the volume can go.
    expect((await still.request('POST', `/v3/backups/${backupId}/action`, { 'os-reset_status': { status: 'error' } })).status).toBe(202);
    const [row] = await still.db.sql<{ backups: number }[]>`SELECT backups FROM resource_states WHERE resource_id = ${volumeId}`;
    expect(row!.backups).toBe(0);
  });

  it('a restore onto a volume still being created from that backup is 409, not a second lease (the harness met it as a 500)', async () => {
    const res = await still.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const volumeId = res.body.volume.id as string;
    await still.db.sql`UPDATE resource_states SET state = 'available' WHERE resource_id = ${volumeId}`;
    const backupId = await backupOf(still, volumeId);
    expect((await still.request('POST', `/v3/backups/${backupId}/action`, { 'os-reset_status': { status: 'available' } })).status).toBe(
      202,
    );
    // A volume made from the backup: creating (no worker), holding the backup as a reader.
    const made = await still.request(
      'POST',
      '/v3/volumes',
      { volume: { backup_id: backupId } },
      { 'openstack-api-version': 'volume 3.47' },
    );
    expect(made.status, JSON.stringify(made.body)).toBe(202);
    const onto = await still.request('POST', `/v3/backups/${backupId}/restore`, { restore: { volume_id: made.body.volume.id } });
    expect(onto.status, JSON.stringify(onto.body)).toBe(409);
    expect(onto.body.conflictingRequest.message).toMatch(/it is 'creating'/);
    const [lease] = await still.db.sql<{ n: number }[]>`
      SELECT count(*)::int AS n FROM leases WHERE source_id = ${backupId} AND holder_id = ${made.body.volume.id}`;
    expect(lease!.n).toBe(1);
  });
});
