/**
 * The real `cinder` CLI (python3-cinderclient, Debian) against the API
 * over real HTTP, in noauth mode, exactly as an operator would run it:
 * volumes, snapshots, clones, attachments, admin actions, and the error
 * lines of refused operations.
 *
 * If `cinder` is not installed this fails, saying how to install it; it
 * never passes without having run the client. (.ci/run installs it.)
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { PosixBackupStore } from '../../src/backup/posix.ts';
import { eventually, PROJECT, useApp, waitStatus } from '../helpers/app.ts';
import { ResidentCli, type CliRun as Run } from '../helpers/resident-cli.ts';

const t = useApp({
  listen: true,
  latencyMs: 2,
  backupStore: new PosixBackupStore({ root: mkdtempSync(join(tmpdir(), 'volstate-cli-backups-')) }),
});
const SERVER = '4e4b9c1a-8c8e-4a69-9c3f-0e7f2c7a1d10';
const cache = mkdtempSync(join(tmpdir(), 'volstate-cinderclient-'));

/** The installed client's entry point, in an interpreter kept between calls (see resident-cli.ts). */
const resident = new ResidentCli('cinder', 'cinderclient.shell');
afterAll(() => resident.close());

/** Run the CLI, as a user of this file's project. */
function cinder(...args: string[]): Promise<Run> {
  return cinderIn(PROJECT, ...args);
}

/** The CLI as a user of another project. */
function cinderIn(project: string, ...args: string[]): Promise<Run> {
  return resident.run(args, cliEnv(project));
}

/**
 * The executable itself, one process per call. Asynchronously: the API
 * answering it runs in this process, and a synchronous spawn would block
 * the event loop that serves it.
 */
function executable(...args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile('cinder', args, { encoding: 'utf8', timeout: 60_000, env: cliEnv(PROJECT) }, (err, out, errOut) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, out, err: errOut });
    });
  });
}

function cliEnv(project: string): Record<string, string | undefined> {
  return {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    OS_AUTH_TYPE: 'noauth',
    OS_USER_ID: project === PROJECT ? 'admin' : 'receiver',
    OS_PROJECT_ID: project,
    CINDER_ENDPOINT: `${t.url}/v3`,
    OS_VOLUME_API_VERSION: '3.70',
    CINDERCLIENT_UUID_CACHE_DIR: cache,
  };
}

/** `| Property | Value |` tables → { property: value }. */
function properties(out: string): Record<string, string> {
  const props: Record<string, string> = {};
  for (const line of out.split('\n')) {
    const m = /^\|\s*(\S[^|]*?)\s*\|\s*(.*?)\s*\|$/.exec(line);
    if (m && m[1] !== 'Property') props[m[1]!] = m[2]!;
  }
  return props;
}

/** List tables → rows keyed by the header. */
function rows(out: string): Record<string, string>[] {
  const lines = out.split('\n').filter((l) => l.startsWith('|'));
  const cells = (l: string) =>
    l
      .split('|')
      .slice(1, -1)
      .map((c) => c.trim());
  const [head, ...body] = lines;
  if (!head) return [];
  const keys = cells(head);
  return body.map((l) => Object.fromEntries(cells(l).map((c, i) => [keys[i]!, c])));
}

function ok(run: Run): Run {
  expect(run.code, `cinder failed:\n${run.out}\n${run.err}`).toBe(0);
  return run;
}

/**
 * A test of the CLI: fails (a failed test, not a skipped one, and not an
 * error in a hook, which vitest does not count in its exit code) when the
 * CLI is missing.
 */
function cliTest(name: string, fn: () => Promise<void>) {
  it(name, async () => {
    if (!resident.installed()) {
      throw new Error(
        'the `cinder` CLI is not installed, and this test drives it for real: install it with ' +
          '`apt-get install -y python3-cinderclient` (.ci/run does), then run the tests again.',
      );
    }
    await fn();
  });
}

describe('the cinder CLI against volstate', () => {
  cliTest('answers through the resident interpreter what the executable answers: output, errors, exit codes', async () => {
    const vol = (await t.request('POST', '/v3/volumes', { volume: { size: 1, name: 'twice-asked' } })).body.volume.id as string;
    await waitStatus(t, 'volumes', vol, 'available');
    const missing = '00000000-0000-4000-8000-00000000dead';
    // An answer, a refusal (exit 1) and a usage error (exit 2): the executable takes 2 s each.
    for (const argv of [['show', vol], ['show', missing], ['bogus-command']]) {
      const [once, resident] = [await executable(...argv), await cinder(...argv)];
      const same = (run: Run) => ({ ...run, err: run.err.replace(/req-[0-9a-f-]+/g, 'req-…') });
      expect(same(resident), `cinder ${argv.join(' ')}`).toEqual(same(once));
    }
    expect((await cinder('show', missing)).code).toBe(1);
  });

  cliTest('creates, shows (by id and by name), lists with filters, extends', async () => {
    // `cinder create` shows the volume it reads back (a GET after the POST): held in the backend's
    // create until the CLI is done, it is still creating then, however fast the worker is.
    const gate = t.faults.hold('create');
    let created: Record<string, string>;
    try {
      created = properties(
        ok(await cinder('create', '--name', 'cli-vol', '--description', 'from the CLI', '--metadata', 'tier=gold', '1')).out,
      );
    } finally {
      gate.release();
    }
    expect(created).toMatchObject({ status: 'creating', size: '1', name: 'cli-vol' });
    await waitStatus(t, 'volumes', created.id!, 'available');
    expect(properties(ok(await cinder('show', created.id!)).out)).toMatchObject({
      id: created.id,
      status: 'available',
      description: 'from the CLI',
    });
    expect(properties(ok(await cinder('show', 'cli-vol')).out)).toMatchObject({
      id: created.id,
      metadata: expect.stringContaining('gold'),
    });
    const listed = rows(ok(await cinder('list', '--name', 'cli-vol')).out);
    expect(listed.map((r) => r.ID)).toEqual([created.id]);
    expect(rows(ok(await cinder('list', '--status', 'error')).out).map((r) => r.ID)).not.toContain(created.id);

    ok(await cinder('extend', created.id!, '2'));
    await t.request('GET', `/v3/volumes/${created.id}`).then(() => waitStatus(t, 'volumes', created.id!, 'available'));
    expect(properties(ok(await cinder('show', created.id!)).out).size).toBe('2');

    const smaller = await cinder('extend', created.id!, '1');
    expect(smaller.code).toBe(1);
    expect(smaller.err).toMatch(
      /^ERROR: Invalid volume: cannot extend volume .* the new size must be larger than the current size.* \(HTTP 400\) \(Request-ID: req-/m,
    );
  });

  cliTest('takes, lists, shows and deletes snapshots; a volume with snapshots refuses delete (HTTP 400)', async () => {
    const vol = properties(ok(await cinder('create', '--name', 'snap-src', '1')).out).id!;
    await waitStatus(t, 'volumes', vol, 'available');
    const snap = properties(ok(await cinder('snapshot-create', '--name', 'cli-snap', vol)).out);
    expect(snap.status).toBe('creating');
    await waitStatus(t, 'snapshots', snap.id!, 'available');
    expect(rows(ok(await cinder('snapshot-list')).out).map((r) => r.ID)).toContain(snap.id);
    expect(properties(ok(await cinder('snapshot-show', snap.id!)).out)).toMatchObject({
      status: 'available',
      'os-extended-snapshot-attributes:progress': '100%',
    });

    const refused = await cinder('delete', vol);
    expect(refused.code).toBe(1);
    expect(refused.out + refused.err).toMatch(/Delete for volume .* failed: Invalid volume: .*it has snapshots.*\(HTTP 400\)/);

    const fromSnap = properties(ok(await cinder('create', '--snapshot-id', snap.id!, '--name', 'from-snap')).out);
    expect(fromSnap).toMatchObject({ snapshot_id: snap.id, size: '1' });
    const clone = properties(ok(await cinder('create', '--source-volid', vol, '--name', 'clone')).out);
    expect(clone).toMatchObject({ source_volid: vol, size: '1' });
    await waitStatus(t, 'volumes', fromSnap.id!, 'available');
    await waitStatus(t, 'volumes', clone.id!, 'available');

    ok(await cinder('snapshot-delete', snap.id!));
    await waitStatus(t, 'snapshots', snap.id!, 'gone');
    ok(await cinder('delete', vol));
    await waitStatus(t, 'volumes', vol, 'gone');
  });

  cliTest('backs up (full, then incremental), lists, shows, restores into a new volume and onto the source, deletes backups', async () => {
    const vol = properties(ok(await cinder('create', '--name', 'backed-up', '1')).out).id!;
    await waitStatus(t, 'volumes', vol, 'available');
    const full = properties(ok(await cinder('backup-create', '--name', 'cli-full', vol)).out);
    expect(full).toMatchObject({ name: 'cli-full', volume_id: vol });
    await waitStatus(t, 'backups', full.id!, 'available');
    const incr = properties(ok(await cinder('backup-create', '--incremental', '--name', 'cli-incr', vol)).out);
    await waitStatus(t, 'backups', incr.id!, 'available');
    expect(properties(ok(await cinder('backup-show', incr.id!)).out)).toMatchObject({ is_incremental: 'True', status: 'available' });
    expect(properties(ok(await cinder('backup-show', 'cli-full')).out).has_dependent_backups).toBe('True');
    const listed = rows(ok(await cinder('backup-list', '--volume-id', vol)).out);
    expect(listed.map((r) => r.ID).sort()).toEqual([full.id, incr.id].sort());

    const refused = await cinder('backup-delete', full.id!);
    expect(refused.code).toBe(1);
    expect(refused.out + refused.err).toMatch(/incremental backups exist for this backup.*\(HTTP 400\)/);

    const restored = properties(ok(await cinder('backup-restore', '--name', 'cli-restored', incr.id!)).out);
    expect(restored).toMatchObject({ backup_id: incr.id, volume_name: 'cli-restored' });
    await waitStatus(t, 'volumes', restored.volume_id!, 'available');
    ok(await cinder('backup-restore', '--volume', vol, full.id!));
    await waitStatus(t, 'volumes', vol, 'available');

    // Export, then import the record as another backup after deleting the row (the database lost it).
    const exported = properties(ok(await cinder('backup-export', incr.id!)).out);
    expect(exported.backup_service).toMatch(/^cinder\.backup\.drivers\.posix/);
    ok(await cinder('backup-reset-state', '--state', 'error', incr.id!));
    expect(properties(ok(await cinder('backup-show', incr.id!)).out).status).toBe('error');
    ok(await cinder('backup-reset-state', '--state', 'available', incr.id!));

    ok(await cinder('backup-delete', incr.id!));
    await waitStatus(t, 'backups', incr.id!, 'gone');
    // Gone from this database (purged): the record brings it back, on the objects still in the store.
    await t.db.sql`DELETE FROM backups WHERE id = ${incr.id!}`;
    await t.db.sql`DELETE FROM resource_states WHERE resource_id = ${incr.id!}`;
    const imported = properties(ok(await cinder('backup-import', exported.backup_service!, exported.backup_url!)).out);
    expect(imported.id).toBe(incr.id);
    const failed = await waitStatus(t, 'backups', incr.id!, 'error');
    // Its delete removed its objects: the import says what is missing rather than claiming a backup.
    expect(failed.fail_reason).toMatch(/no metadata/);
    ok(await cinder('backup-delete', incr.id!));
    await waitStatus(t, 'backups', incr.id!, 'gone');
    ok(await cinder('backup-delete', full.id!));
    await waitStatus(t, 'backups', full.id!, 'gone');
  });

  cliTest('drives the attachment flow: create, update with a connector, complete, list, show, delete', async () => {
    const vol = properties(ok(await cinder('create', '--name', 'attach-me', '1')).out).id!;
    await waitStatus(t, 'volumes', vol, 'available');
    const att = properties(ok(await cinder('attachment-create', vol, SERVER)).out);
    expect(att).toMatchObject({ status: 'reserved', instance: SERVER, volume_id: vol });
    const updated = ok(
      await cinder(
        'attachment-update',
        '--initiator',
        'iqn.1993-08.org.debian:01:cli',
        '--ip',
        '10.0.0.9',
        '--host',
        'compute-9',
        '--mountpoint',
        '/dev/vdc',
        att.id!,
      ),
    );
    expect(updated.out).toMatch(/driver_volume_type\s*\|\s*fake/);
    expect(properties(updated.out)).toMatchObject({ status: 'attaching', attach_mode: 'rw', host: 'compute-9' });
    ok(await cinder('attachment-complete', att.id!));
    const listed = rows(ok(await cinder('attachment-list', '--volume-id', vol)).out);
    expect(listed).toEqual([{ ID: att.id, 'Volume ID': vol, Status: 'attached', 'Server ID': SERVER }]);
    expect(properties(ok(await cinder('attachment-show', att.id!)).out)).toMatchObject({ status: 'attached', attach_mode: 'rw' });
    const shown = properties(ok(await cinder('show', vol)).out);
    expect(shown).toMatchObject({ status: 'in-use', attached_servers: `['${SERVER}']`, attachment_ids: `['${att.id}']` });

    const inUse = await cinder('delete', vol);
    expect(inUse.code).toBe(1);
    expect(inUse.out + inUse.err).toMatch(/Invalid volume: cannot delete volume .* in status 'in-use'.*\(HTTP 400\)/);

    ok(await cinder('attachment-delete', att.id!));
    expect(properties(ok(await cinder('show', vol)).out).status).toBe('available');
    ok(await cinder('delete', vol));
    await waitStatus(t, 'volumes', vol, 'gone');
  });

  cliTest('resets state and force-deletes (admin); an invalid reset is HTTP 400', async () => {
    const vol = properties(ok(await cinder('create', '--name', 'stuck', '1')).out).id!;
    await waitStatus(t, 'volumes', vol, 'available');
    ok(await cinder('reset-state', '--state', 'error', vol));
    expect(properties(ok(await cinder('show', vol)).out).status).toBe('error');
    const bogus = await cinder('reset-state', '--state', 'bogus', vol);
    expect(bogus.code).toBe(1);
    expect(bogus.out + bogus.err).toMatch(/Volume status: bogus is invalid.*\(HTTP 400\)/);
    ok(await cinder('force-delete', vol));
    await waitStatus(t, 'volumes', vol, 'gone');
    const missing = await cinder('show', vol);
    expect(missing.code).toBe(1);
    expect(missing.err).toMatch(new RegExp(`No volume with a name or ID of '${vol}' exists`));
  });

  cliTest('sets and unsets volume and snapshot metadata, sums volumes up, and sorts the list by name', async () => {
    const vol = properties(ok(await cinder('create', '--name', 'meta-b', '--metadata', 'keep=1', '1')).out).id!;
    const other = properties(ok(await cinder('create', '--name', 'meta-a', '2')).out).id!;
    await waitStatus(t, 'volumes', vol, 'available');
    await waitStatus(t, 'volumes', other, 'available');
    ok(await cinder('metadata', vol, 'set', 'tier=gold', 'zone=b'));
    ok(await cinder('metadata', vol, 'unset', 'zone'));
    expect((await t.request('GET', `/v3/volumes/${vol}/metadata`)).body.metadata).toEqual({ keep: '1', tier: 'gold' });
    const snap = properties(ok(await cinder('snapshot-create', vol)).out).id!;
    await waitStatus(t, 'snapshots', snap, 'available');
    ok(await cinder('snapshot-metadata', snap, 'set', 'when=now'));
    expect((await t.request('GET', `/v3/snapshots/${snap}/metadata`)).body.metadata).toEqual({ when: 'now' });

    const summary = properties(ok(await cinder('summary')).out);
    expect(Number(summary.total_count)).toBeGreaterThanOrEqual(2);
    expect(Number(summary.total_size)).toBeGreaterThanOrEqual(3);

    // cinderclient sends --sort name as display_name.
    const names = rows(ok(await cinder('list', '--sort', 'name:asc')).out).map((r) => r.Name);
    expect(names.indexOf('meta-a')).toBeLessThan(names.indexOf('meta-b'));
    expect(names.indexOf('meta-a')).toBeGreaterThanOrEqual(0);
  });

  cliTest('manages volume types: type-create, type-key, extra-specs-list, type-access-*, create --volume-type, type-delete', async () => {
    const created = rows(ok(await cinder('type-create', '--description', 'shared disks', 'cli-multi')).out)[0]!;
    expect(created).toMatchObject({ Name: 'cli-multi', Description: 'shared disks', Is_Public: 'True' });
    ok(await cinder('type-key', 'cli-multi', 'set', 'multiattach=<is> True', 'tier=1'));
    ok(await cinder('type-key', 'cli-multi', 'unset', 'tier'));
    const specs = rows(ok(await cinder('extra-specs-list')).out).find((r) => r.Name === 'cli-multi')!;
    expect(specs.extra_specs).toMatch(/multiattach.*<is> True/);
    expect(specs.extra_specs).not.toMatch(/tier/);
    expect(rows(ok(await cinder('type-list')).out).map((r) => r.Name)).toEqual(expect.arrayContaining(['__DEFAULT__', 'cli-multi']));

    const vol = properties(ok(await cinder('create', '--volume-type', 'cli-multi', '--name', 'shared', '1')).out);
    expect(vol).toMatchObject({ volume_type: 'cli-multi', multiattach: 'True' });
    await waitStatus(t, 'volumes', vol.id!, 'available');
    const inUse = await cinder('type-delete', 'cli-multi');
    expect(inUse.out + inUse.err).toMatch(/deletion is not allowed with volumes present with the type/);
    ok(await cinder('type-create', 'cli-plain'));
    ok(await cinder('retype', vol.id!, 'cli-plain'));
    await eventually(
      async () => ((await t.request('GET', `/v3/volumes/${vol.id}`)).body.volume.volume_type === 'cli-plain' ? true : undefined),
      10_000,
      'the retype',
    );
    ok(await cinder('type-delete', 'cli-multi'));

    const priv = rows(ok(await cinder('type-create', '--is-public', 'false', 'cli-private')).out)[0]!;
    ok(await cinder('type-access-add', '--volume-type', priv.ID!, '--project-id', PROJECT));
    expect(rows(ok(await cinder('type-access-list', '--volume-type', priv.ID!)).out)).toEqual([
      { Volume_type_ID: priv.ID, Project_ID: PROJECT },
    ]);
    ok(await cinder('type-access-remove', '--volume-type', priv.ID!, '--project-id', PROJECT));
    ok(await cinder('type-delete', 'cli-private'));
    expect(rows(ok(await cinder('type-list')).out).map((r) => r.Name)).not.toContain('cli-private');
  });

  cliTest(
    'manages QoS specs: qos-create, qos-key, qos-associate, qos-get-association, qos-disassociate, qos-list, qos-delete',
    async () => {
      const qos = properties(ok(await cinder('qos-create', 'cli-qos', 'consumer=front-end', 'read_iops_sec=2000')).out);
      expect(qos).toMatchObject({ name: 'cli-qos', consumer: 'front-end' });
      expect(qos.specs).toMatch(/read_iops_sec.*2000/);
      ok(await cinder('qos-key', qos.id!, 'set', 'iops_bytes=500'));
      ok(await cinder('qos-key', qos.id!, 'unset', 'read_iops_sec'));
      expect(properties(ok(await cinder('qos-show', qos.id!)).out).specs).toBe('iops_bytes : 500');
      const type = rows(ok(await cinder('type-create', 'cli-qos-type')).out)[0]!;
      ok(await cinder('qos-associate', qos.id!, type.ID!));
      expect(rows(ok(await cinder('qos-get-association', qos.id!)).out)).toEqual([
        { Association_Type: 'volume_type', Name: 'cli-qos-type', ID: type.ID },
      ]);
      const refused = await cinder('qos-delete', qos.id!);
      expect(refused.out + refused.err).toMatch(/still associated/);
      ok(await cinder('qos-disassociate', qos.id!, type.ID!));
      expect(rows(ok(await cinder('qos-list')).out).map((r) => r.Name)).toContain('cli-qos');
      ok(await cinder('qos-delete', qos.id!));
      expect(rows(ok(await cinder('qos-list')).out).map((r) => r.Name)).not.toContain('cli-qos');
    },
  );

  cliTest('shows and sets quotas and quota classes, refuses a create over them, and shows absolute limits', async () => {
    ok(await cinder('quota-update', '--volumes', '200', '--gigabytes', '400', PROJECT));
    const shown = rows(ok(await cinder('quota-show', PROJECT)).out);
    expect(shown.find((r) => r.Property === 'volumes')?.Value).toBe('200');
    const usage = rows(ok(await cinder('quota-usage', PROJECT)).out).find((r) => r.Type === 'volumes')!;
    expect(usage).toMatchObject({ Limit: '200', Reserved: '0' });
    const limits = rows(ok(await cinder('absolute-limits')).out);
    expect(limits.find((r) => r.Name === 'maxTotalVolumes')?.Value).toBe('200');
    expect(Number(limits.find((r) => r.Name === 'totalVolumesUsed')?.Value)).toBe(Number(usage['In_use']));
    // One volume more than the quota leaves room for is refused with Cinder's words.
    ok(await cinder('quota-update', '--volumes', usage['In_use']!, PROJECT));
    const refused = await cinder('create', '1');
    expect(refused.code).toBe(1);
    expect(refused.err).toMatch(/Maximum number of volumes allowed \(\d+\) exceeded for quota 'volumes'\. \(HTTP 413\)/);
    ok(await cinder('quota-delete', PROJECT));
    expect(rows(ok(await cinder('quota-defaults', PROJECT)).out).find((r) => r.Property === 'volumes')?.Value).toBe('-1');
    ok(await cinder('quota-class-update', '--snapshots', '50', 'gold'));
    expect(rows(ok(await cinder('quota-class-show', 'gold')).out).find((r) => r.Property === 'snapshots')?.Value).toBe('50');
  });

  cliTest('lists services, pools and availability zones, and drains a host by disabling its volume service', async () => {
    const services = rows(ok(await cinder('service-list')).out);
    const volume = services.find((r) => r.Binary === 'cinder-volume')!;
    expect(volume).toMatchObject({ Zone: 'nova', Status: 'enabled', State: 'up' });
    expect(services.map((r) => r.Binary).sort()).toEqual(['cinder-backup', 'cinder-scheduler', 'cinder-volume']);
    const pools = rows(ok(await cinder('get-pools')).out);
    expect(pools.map((r) => r.Property)).toContain('name');
    expect(ok(await cinder('get-pools', '--detail')).out).toMatch(/total_capacity_gb/);
    expect(rows(ok(await cinder('availability-zone-list')).out)).toEqual([{ Name: 'nova', Status: 'available' }]);

    ok(await cinder('service-disable', '--reason', 'maintenance window', volume.Host!, 'cinder-volume'));
    expect(rows(ok(await cinder('service-list')).out).find((r) => r.Binary === 'cinder-volume')).toMatchObject({
      Status: 'disabled',
      'Disabled Reason': 'maintenance window',
    });
    ok(await cinder('service-enable', volume.Host!, 'cinder-volume'));
    expect(rows(ok(await cinder('service-list')).out).find((r) => r.Binary === 'cinder-volume')).toMatchObject({ Status: 'enabled' });
  });

  cliTest(
    'transfers a volume to another project: transfer-create, transfer-list, transfer-show, transfer-accept, transfer-delete',
    async () => {
      const OTHER = 'feedfacefeedfacefeedfacefeedface';
      const vol = properties(ok(await cinder('create', '--name', 'cli-gift', '--poll', '1')).out);
      const made = properties(ok(await cinder('transfer-create', '--name', 'to-other', 'cli-gift')).out);
      expect(made.auth_key).toMatch(/^[0-9a-f]{16}$/);
      expect(made.volume_id).toBe(vol.id);
      expect(properties(ok(await cinder('show', vol.id!)).out).status).toBe('awaiting-transfer');
      expect(rows(ok(await cinder('transfer-list')).out).map((r) => r.ID)).toContain(made.id);
      expect(properties(ok(await cinder('transfer-show', made.id!)).out)).toMatchObject({ name: 'to-other', volume_id: vol.id });
      // A wrong key is Cinder's 400; the right one hands the volume over.
      const wrong = await cinderIn(OTHER, 'transfer-accept', made.id!, 'ffffffffffffffff');
      expect(wrong.code).toBe(1);
      expect(wrong.err).toMatch(/invalid auth key.*\(HTTP 400\)/);
      ok(await cinderIn(OTHER, 'transfer-accept', made.id!, made.auth_key!));
      const theirs = properties(ok(await cinderIn(OTHER, 'show', vol.id!)).out);
      expect(theirs).toMatchObject({ status: 'available', user_id: 'receiver', 'os-vol-tenant-attr:tenant_id': OTHER });

      // Withdrawn: back to available with its owner.
      const again = properties(ok(await cinderIn(OTHER, 'transfer-create', vol.id!)).out);
      ok(await cinderIn(OTHER, 'transfer-delete', again.id!));
      expect(properties(ok(await cinderIn(OTHER, 'show', vol.id!)).out).status).toBe('available');
      expect(rows(ok(await cinderIn(OTHER, 'transfer-list')).out)).toEqual([]);
    },
  );

  cliTest('sets a per-type quota with quota-update --volume-type and is held to it', async () => {
    ok(await cinder('type-create', 'cli-capped'));
    ok(await cinder('quota-update', '--volumes', '1', '--volume-type', 'cli-capped', PROJECT));
    expect(rows(ok(await cinder('quota-show', PROJECT)).out).find((r) => r.Property === 'volumes_cli-capped')?.Value).toBe('1');
    ok(await cinder('create', '--volume-type', 'cli-capped', '1'));
    const refused = await cinder('create', '--volume-type', 'cli-capped', '1');
    expect(refused.err).toMatch(/exceeded for quota 'volumes_cli-capped'\. \(HTTP 413\)/);
  });

  cliTest(
    'runs groups as an operator would: group-type-*, group-create, create --group-id, group-update, group-snapshot-*, group-create-from-src, group-delete --delete-volumes',
    async () => {
      ok(await cinder('type-create', 'cli-group-vt'));
      expect(rows(ok(await cinder('group-type-create', 'cli-gt')).out)[0]).toMatchObject({ Name: 'cli-gt' });
      ok(await cinder('group-type-key', 'cli-gt', 'set', 'consistent_group_snapshot_enabled=<is> True'));
      expect(rows(ok(await cinder('group-type-list')).out).map((r) => r.Name)).toContain('cli-gt');
      const made = properties(ok(await cinder('group-create', '--name', 'cli-group', 'cli-gt', 'cli-group-vt')).out);
      const g = made.id!;
      await eventually(
        async () => properties(ok(await cinder('group-show', g)).out).status === 'available' || undefined,
        10_000,
        'the group',
      );
      const v1 = properties(
        ok(await cinder('create', '--volume-type', 'cli-group-vt', '--group-id', g, '--name', 'cli-member', '--poll', '1')).out,
      );
      expect(v1.group_id).toBe(g);
      const v2 = properties(ok(await cinder('create', '--volume-type', 'cli-group-vt', '--name', 'cli-joiner', '--poll', '1')).out);
      ok(await cinder('group-update', '--add-volumes', v2.id!, g));
      expect(properties(ok(await cinder('show', v2.id!)).out).group_id).toBe(g);
      expect(rows(ok(await cinder('group-list')).out).map((r) => r.ID)).toContain(g);

      const gs = properties(ok(await cinder('group-snapshot-create', '--name', 'cli-gs', g)).out);
      await eventually(
        async () => properties(ok(await cinder('group-snapshot-show', gs.id!)).out).status === 'available' || undefined,
        10_000,
        'the group snapshot',
      );
      expect(rows(ok(await cinder('group-snapshot-list')).out).map((r) => r.ID)).toContain(gs.id);
      // Its member snapshots go with it only.
      const member = rows(ok(await cinder('snapshot-list', '--volume-id', v1.id!)).out)[0]!;
      const refused = await cinder('snapshot-delete', member.ID!);
      expect(refused.code).toBe(1);
      expect(`${refused.out}${refused.err}`).toMatch(/part of group snapshot/);

      const copy = properties(ok(await cinder('group-create-from-src', '--group-snapshot', gs.id!, '--name', 'cli-copy')).out);
      await eventually(
        async () => properties(ok(await cinder('group-show', copy.id!)).out).status === 'available' || undefined,
        10_000,
        'the copy',
      );
      ok(await cinder('group-delete', '--delete-volumes', copy.id!));
      await eventually(async () => ((await cinder('group-show', copy.id!)).code === 1 ? true : undefined), 10_000, 'the copy gone');
      ok(await cinder('group-snapshot-delete', gs.id!));
      await eventually(
        async () => ((await cinder('group-snapshot-show', gs.id!)).code === 1 ? true : undefined),
        10_000,
        'the snapshot gone',
      );
      ok(await cinder('group-delete', '--delete-volumes', g));
      await eventually(async () => ((await cinder('group-show', g)).code === 1 ? true : undefined), 10_000, 'the group gone');
      expect((await cinder('show', v1.id!)).code).toBe(1);
    },
  );

  cliTest('sets, shows and unsets a project default type (default-type-*), and makes an encryption type', async () => {
    ok(await cinder('type-create', 'cli-default'));
    ok(await cinder('default-type-set', 'cli-default', PROJECT));
    expect(rows(ok(await cinder('default-type-list')).out).map((r) => r['Project ID'])).toContain(PROJECT);
    const vol = properties(ok(await cinder('create', '--name', 'typeless', '1')).out);
    expect(vol.volume_type).toBe('cli-default');
    ok(await cinder('default-type-unset', PROJECT));
    expect(properties(ok(await cinder('create', '--name', 'typeless-again', '1')).out).volume_type).toBe('__DEFAULT__');

    ok(await cinder('type-create', 'cli-secret'));
    ok(
      await cinder(
        'encryption-type-create',
        '--cipher',
        'aes-xts-plain64',
        '--key-size',
        '256',
        '--control-location',
        'front-end',
        'cli-secret',
        'luks',
      ),
    );
    expect(ok(await cinder('encryption-type-show', 'cli-secret')).out).toMatch(/aes-xts-plain64/);
    const secret = properties(ok(await cinder('create', '--volume-type', 'cli-secret', '--name', 'sealed', '1')).out);
    expect(secret.encrypted).toBe('True');
  });
});
