/**
 * The history checker can pass and can fail: a real run (every kind of
 * operation through the API and a worker) checks clean; then each kind of
 * violation is planted, one resource at a time, and each is caught, named
 * on the resource it was planted on.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { PosixBackupStore } from '../../src/backup/posix.ts';
import { checkHistory, formatReport, type ViolationKind } from '../../src/check/history.ts';
import { factsOf } from '../../src/check/edges.ts';
import { availableVolume, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ backupStore: new PosixBackupStore({ root: mkdtempSync(join(tmpdir(), 'volstate-check-backups-')) }) });

/** `volstate check` on this file's database, as a process: its exit code and report. */
function volstateCheck(): Promise<{ code: number; out: string }> {
  return new Promise((resolve) => {
    execFile('npx', ['volstate', 'check'], { env: { ...process.env, DATABASE_URL: t.db.url } }, (err, stdout) =>
      resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, out: stdout }),
    );
  });
}

describe('the history checker', () => {
  it('reads every machine edge from the XState definitions', () => {
    const volume = factsOf('volume');
    expect(volume.edges.has('available|EXTEND|extending.backend')).toBe(true);
    expect(volume.edges.has('available|REVERT|extending.backend')).toBe(false);
    expect(volume.initial).toMatch(/^creating\./);
    expect(volume.steps.has('extending.backend')).toBe(true);
    expect(factsOf('attachment').edges.has('reserved|COMPLETE|attached')).toBe(true);
  });

  it('passes a real run, then catches each kind of violation planted in it', async () => {
    const sql = t.db.sql;
    // A real run: every kind of operation.
    const [a, b, c, d, e] = (await Promise.all([1, 2, 3, 4, 5].map(() => availableVolume(t)))) as [string, string, string, string, string];
    const snap = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: b } });
    await waitStatus(t, 'snapshots', snap.body.snapshot.id, 'available');
    const clone = await t.request('POST', '/v3/volumes', { volume: { source_volid: c } });
    await waitStatus(t, 'volumes', clone.body.volume.id, 'available');
    expect((await t.request('POST', `/v3/volumes/${a}/action`, { 'os-extend': { new_size: 2 } })).status).toBe(202);
    const att = await t.request('POST', '/v3/attachments', {
      attachment: { volume_uuid: d, instance_uuid: crypto.randomUUID(), connector: { host: 'h' } },
    });
    expect((await t.request('POST', `/v3/attachments/${att.body.attachment.id}/action`, { 'os-complete': null })).status).toBe(204);
    const att2 = await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: e } });
    expect((await t.request('DELETE', `/v3/attachments/${att2.body.attachment.id}`)).status).toBe(200);
    expect((await t.request('DELETE', `/v3/volumes/${e}`)).status).toBe(202);
    // A full backup and an incremental over it (the incremental holds its parent).
    const full = await t.request('POST', '/v3/backups', { backup: { volume_id: c } });
    await waitStatus(t, 'backups', full.body.backup.id, 'available');
    const incr = await t.request('POST', '/v3/backups', { backup: { volume_id: c, incremental: true } });
    await waitStatus(t, 'backups', incr.body.backup.id, 'available');
    // A group of two volumes and a group snapshot of it.
    const vt = (await t.request('POST', '/v3/types', { volume_type: { name: 'checked' } })).body.volume_type.id as string;
    const gt = (await t.request('POST', '/v3/group_types', { group_type: { name: 'checked' } })).body.group_type.id as string;
    const group = (await t.request('POST', '/v3/groups', { group: { name: 'g', group_type: gt, volume_types: [vt] } })).body.group
      .id as string;
    await waitStatus(t, 'groups', group, 'available');
    const [m1, m2] = [
      await availableVolume(t, 1, { volume_type: vt, group_id: group }),
      await availableVolume(t, 1, { volume_type: vt, group_id: group }),
    ];
    const gs = (await t.request('POST', '/v3/group_snapshots', { group_snapshot: { group_id: group, name: 'gs' } })).body.group_snapshot
      .id as string;
    await waitStatus(t, 'group_snapshots', gs, 'available');
    await waitStatus(t, 'volumes', a, 'available');
    await waitStatus(t, 'volumes', e, 'gone');
    await t.worker!.idle();

    const clean = await checkHistory(sql, { atRest: true });
    expect(formatReport(clean)).toMatch(/: 0 violations$/);
    expect(clean.transitions).toBeGreaterThan(40);
    const cli = await volstateCheck();
    expect(cli, cli.out).toMatchObject({ code: 0 });
    expect(cli.out).toMatch(/^checked \d+ transitions of \d+ resources: 0 violations$/m);

    // Plant one violation per kind, each on its own resource; each must be caught there.
    const caught = async (kind: ViolationKind, resource: string, opts = {}) => {
      const report = await checkHistory(sql, { atRest: true, ...opts });
      const found = report.violations.filter((v) => v.kind === kind && v.resource === resource);
      expect(found, `${kind} on ${resource}, in:\n${formatReport(report)}`).not.toEqual([]);
      return found[0]!;
    };
    const fresh = async () => availableVolume(t);

    // An EXTEND recorded as a REVERT: available --REVERT--> extending.backend is no edge.
    await sql`UPDATE state_transitions SET event = 'REVERT' WHERE resource_id = ${a} AND event = 'EXTEND'`;
    const edge = await caught('not-an-edge', `volume:${a}`);
    expect(edge.slice.some((l) => l.includes('--REVERT--> extending'))).toBe(true);

    const v1 = await fresh();
    await sql`UPDATE state_transitions SET version = version + 1 WHERE resource_id = ${v1} AND version = (SELECT max(version) FROM state_transitions WHERE resource_id = ${v1})`;
    await sql`UPDATE resource_states SET version = version + 1 WHERE resource_id = ${v1}`;
    await caught('version-gap', `volume:${v1}`);

    const v2 = await fresh();
    await sql`UPDATE state_transitions SET from_state = 'error' WHERE resource_id = ${v2} AND version = 3`;
    await caught('broken-chain', `volume:${v2}`);

    const v3 = await fresh();
    await sql`UPDATE resource_states SET state = 'error' WHERE resource_id = ${v3}`;
    await caught('row-mismatch', `volume:${v3}`);

    const v4 = await fresh();
    await sql`UPDATE resource_states SET dependents = 1 WHERE resource_id = ${v4}`;
    await caught('counter-lease-mismatch', `volume:${v4}`);

    const v9 = await fresh();
    await sql`UPDATE resource_states SET backups = 1 WHERE resource_id = ${v9}`;
    const backupCounter = await caught('counter-lease-mismatch', `volume:${v9}`);
    expect(backupCounter.detail).toContain('backups 1 for 0 backup leases');

    await sql`UPDATE resource_states SET state = 'deleted' WHERE resource_id = ${full.body.backup.id}`;
    await caught('incremental-outlives-parent', `backup:${incr.body.backup.id}`);

    const v5 = await fresh();
    await sql`INSERT INTO leases (source_type, source_id, holder_type, holder_id, kind) VALUES ('volume', ${v5}, 'volume', ${crypto.randomUUID()}, 'reader')`;
    await sql`UPDATE resource_states SET readers = 1 WHERE resource_id = ${v5}`;
    await caught('reader-at-rest', `volume:${v5}`);

    const v6 = await fresh();
    await sql`UPDATE resource_states SET owner = 'worker:ghost' WHERE resource_id = ${v6}`;
    await caught('owned-at-rest', `volume:${v6}`);

    const v7 = await fresh();
    const [last] = await sql`SELECT max(version)::int AS v FROM state_transitions WHERE resource_id = ${v7}`;
    await sql`INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version, actor) VALUES ('volume', ${v7}, 'available', 'EXTEND', 'extending.backend', ${last!.v + 1}, 'planted')`;
    await sql`UPDATE resource_states SET state = 'extending.backend', version = version + 1 WHERE resource_id = ${v7}`;
    await caught('not-at-rest', `volume:${v7}`);

    await sql`UPDATE resource_states SET state = 'deleted' WHERE resource_id = ${b}`;
    await caught('snapshot-outlives-volume', `snapshot:${snap.body.snapshot.id}`);

    await sql`UPDATE resource_states SET state = 'deleted' WHERE resource_id = ${d}`;
    await caught('attachment-on-deleted-volume', `attachment:${att.body.attachment.id}`);

    await sql`UPDATE resource_states SET att_attached = att_attached + 1 WHERE resource_id = ${c}`;
    await caught('attachment-counts', `volume:${c}`);

    // A member that no longer names its group; a member snapshot left behind by its group snapshot's step.
    await sql`UPDATE volumes SET group_id = NULL WHERE id = ${m1}`;
    await caught('group-membership', `group:${group}`);
    const [member] = await sql<{ id: string }[]>`SELECT id FROM snapshots WHERE group_snapshot_id = ${gs} AND volume_id = ${m2}`;
    await sql`UPDATE resource_states SET state = 'creating.group' WHERE resource_type = 'snapshot' AND resource_id = ${member!.id}`;
    const partial = await caught('group-snapshot-partial', `group_snapshot:${gs}`);
    expect(partial.detail).toContain(member!.id);

    const v8 = await fresh();
    await sql`ALTER TABLE resource_states DROP CONSTRAINT resource_states_counts`;
    await sql`UPDATE resource_states SET readers = -1 WHERE resource_id = ${v8}`;
    await caught('negative-counter', `volume:${v8}`);

    const [{ request_id: done }] =
      (await sql`SELECT request_id FROM state_transitions WHERE request_id IS NOT NULL LIMIT 1`) as unknown as [{ request_id: string }];
    const requests = { accepted: ['req-never-made'], refused: [done] };
    await caught('accepted-not-in-history', 'request:req-never-made', { requests });
    await caught('refused-but-changed', `request:${done}`, { requests });

    // A gigabyte of usage that no live resource accounts for.
    const [{ project_id: project }] = (await sql`SELECT project_id FROM volumes LIMIT 1`) as unknown as [{ project_id: string }];
    await sql`INSERT INTO quota_usages (project_id, resource, slot, in_use) VALUES (${project}, 'gigabytes', 0, 1)
      ON CONFLICT (project_id, resource, slot) DO UPDATE SET in_use = quota_usages.in_use + 1`;
    await caught('quota-usage', `project:${project}`);
    // (Earlier plants already broke this project's counts: look for the gigabytes one among them.)
    const quota = (await checkHistory(sql, { atRest: true })).violations.filter(
      (v) => v.kind === 'quota-usage' && v.resource === `project:${project}`,
    );
    expect(quota.map((v) => v.detail)).toContainEqual(
      expect.stringMatching(/^gigabytes: \d+ recorded as in use, the live resources add up to \d+$/),
    );

    const created = await sql`SELECT resource_id FROM state_transitions WHERE resource_id = ${clone.body.volume.id} AND version = 1`;
    expect(created).toHaveLength(1);
    await sql`UPDATE state_transitions SET to_state = 'available' WHERE resource_id = ${clone.body.volume.id} AND version = 1`;
    await caught('bad-creation', `volume:${clone.body.volume.id}`);

    const failed = await volstateCheck();
    expect(failed.code).toBe(1);
    expect(failed.out).toMatch(
      /^not-an-edge volume:[0-9a-f-]+: available --REVERT--> extending\.backend is no edge of the volume machine$/m,
    );
  }, 120_000);
});
