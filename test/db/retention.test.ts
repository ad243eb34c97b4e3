/**
 * Retention: deleted resources leave the live indexes in the statement that
 * deletes them; their history stays readable until a purge removes what is
 * older than the retention, in batches; the history is partitioned by
 * month, and a month that ended before the cutoff is dropped whole. The
 * history checker still passes on what remains.
 */
import { execFile } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ensureHistoryPartitions, purge } from '../../db/retention.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { Enforcer } from '../../src/enforcer.ts';
import { Worker } from '../../src/worker/worker.ts';
import { checkHistory, formatReport } from '../../src/check/history.ts';
import { availableVolume, eventually, useApp, waitStatus } from '../helpers/app.ts';
import { volstateArgs } from '../../src/launch.ts';

const t = useApp();

async function deletedVolume(withSnapshot = false): Promise<string> {
  const id = await availableVolume(t);
  if (withSnapshot) {
    const snap = (await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: id } })).body.snapshot.id;
    await waitStatus(t, 'snapshots', snap, 'available');
    expect((await t.request('DELETE', `/v3/volumes/${id}?cascade=True`)).status).toBe(202);
  } else {
    expect((await t.request('DELETE', `/v3/volumes/${id}`)).status).toBe(202);
  }
  await waitStatus(t, 'volumes', id, 'gone');
  return id;
}

/** Pretend a resource was deleted `days` ago (its data row, its state row, its history). */
async function age(id: string, days: number) {
  const when = new Date(Date.now() - days * 86_400_000);
  await t.db.sql`UPDATE volumes SET deleted_at = ${when} WHERE id = ${id}`;
  await t.db.sql`UPDATE snapshots SET deleted_at = ${when} WHERE volume_id = ${id}`;
  // (Into last month: the default partition, as no month partition was made that far back.)
  await t.db
    .sql`UPDATE state_transitions SET at = ${when} WHERE resource_id = ${id} OR resource_id IN (SELECT id FROM snapshots WHERE volume_id = ${id})`;
}

const partitions = async () =>
  (
    await t.db.sql<{ name: string }[]>`
      SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
      WHERE p.relname = 'state_transitions' ORDER BY 1`
  ).map((r) => r.name);

describe('retention', () => {
  it('marks a resource deleted in the statement that deletes it: the live indexes never hold it', async () => {
    const id = await deletedVolume();
    const [row] = await t.db.sql<{ deleted_at: Date | null; state: string }[]>`
      SELECT v.deleted_at, s.state FROM volumes v JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = v.id WHERE v.id = ${id}`;
    expect(row!.state).toBe('deleted');
    expect(row!.deleted_at).toBeInstanceOf(Date);
    // The deletion's own transition and deleted_at are one statement: the same instant.
    const [last] = await t.db.sql<{ at: Date }[]>`SELECT at FROM state_transitions WHERE resource_id = ${id} ORDER BY version DESC LIMIT 1`;
    expect(row!.deleted_at!.getTime()).toBe(last!.at.getTime());
    // A plan for a project's first page uses the partial index of live rows.
    const plan = (
      await t.db.sql.unsafe(
        `EXPLAIN SELECT id FROM volumes WHERE project_id = 'p' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC LIMIT 50`,
      )
    )
      .map((r) => Object.values(r)[0])
      .join('\n');
    expect(plan).toContain('volumes_live_project_created');
  });

  it('keeps the history of a deleted volume readable until a purge past its deletion removes it, in batches', async () => {
    const old = await Promise.all([deletedVolume(true), deletedVolume(), deletedVolume()]);
    const recent = await deletedVolume(true);
    const live = await availableVolume(t);
    for (const id of old) await age(id, 40);
    for (const id of [...old, recent]) expect((await t.request('GET', `/v3/volumes/${id}/transitions`)).status).toBe(200);

    const report = await purge(t.db.sql, new Date(Date.now() - 30 * 86_400_000), 2);
    expect(report.rows.volumes).toBe(3);
    expect(report.rows.snapshots).toBe(1);
    expect(report.historyRows).toBeGreaterThan(0);
    for (const id of old) {
      expect((await t.request('GET', `/v3/volumes/${id}/transitions`)).status).toBe(404);
      expect(await t.db.sql`SELECT 1 FROM resource_states WHERE resource_id = ${id}`).toHaveLength(0);
    }
    expect((await t.request('GET', `/v3/volumes/${recent}/transitions`)).body.transitions.at(-1)).toMatchObject({ to: 'deleted' });
    expect((await t.request('GET', `/v3/volumes/${live}`)).body.volume.status).toBe('available');
    // What remains (history of purged volumes in this month's partition included) still checks.
    const checked = await checkHistory(t.db.sql, { atRest: true });
    expect(checked.violations, formatReport(checked)).toEqual([]);
  });

  it('drops a month of history whole once it ended before the cutoff, and makes the months ahead', async () => {
    // A month long past, with a resource whose history lies in it and goes on today.
    await t.db.sql.unsafe(
      `CREATE TABLE state_transitions_2025_01 PARTITION OF state_transitions FOR VALUES FROM ('2025-01-01T00:00:00Z') TO ('2025-02-01T00:00:00Z')`,
    );
    const id = await availableVolume(t);
    await t.db.sql`UPDATE state_transitions SET at = '2025-01-15T00:00:00Z' WHERE resource_id = ${id} AND version <= 2`;
    expect(await t.db.sql`SELECT 1 FROM state_transitions_2025_01 WHERE resource_id = ${id}`).toHaveLength(2);

    const report = await purge(t.db.sql, new Date(Date.now() - 30 * 86_400_000));
    expect(report.partitions).toEqual(['state_transitions_2025_01']);
    expect(await partitions()).not.toContain('state_transitions_2025_01');
    const history = (await t.request('GET', `/v3/volumes/${id}/transitions`)).body.transitions as { version: number }[];
    expect(history[0]!.version).toBe(3);
    // A history that starts after its creation is what the purge left: the checker accepts it.
    const checked = await checkHistory(t.db.sql, { atRest: true });
    expect(checked.violations, formatReport(checked)).toEqual([]);
    // ...and only then: without the purge's horizon, the same history is a violation.
    await t.db.sql`DELETE FROM history_horizon`;
    const strict = await checkHistory(t.db.sql, { atRest: true });
    expect(strict.violations.map((v) => v.kind)).toContain('version-gap');

    const now = new Date();
    const ahead = [0, 1, 2].map((i) => {
      const m = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + i, 1));
      return `state_transitions_${m.getUTCFullYear()}_${String(m.getUTCMonth() + 1).padStart(2, '0')}`;
    });
    expect(await partitions()).toEqual(expect.arrayContaining([...ahead, 'state_transitions_default']));
    // Three months on, a round makes the next ones.
    const later = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + 3, 1));
    const made = await ensureHistoryPartitions(t.db.sql, later);
    expect(made.length).toBeGreaterThan(0);
    expect(await ensureHistoryPartitions(t.db.sql, later)).toEqual([]);
  });

  it('is applied by the workers on their own with a retention (VOLSTATE_RETENTION)', async () => {
    const id = await deletedVolume();
    await age(id, 2);
    // A worker that keeps one day and runs a round every 50 ms.
    const worker = new Worker({
      sql: t.db.sql,
      enforcer: new Enforcer(),
      driver: new FakeDriver(),
      concurrency: 1,
      pollMs: 60_000,
      retention: { keepMs: 86_400_000, everyMs: 50 },
    });
    await worker.start();
    try {
      await eventually(
        async () => ((await t.db.sql`SELECT 1 FROM volumes WHERE id = ${id}`).length === 0 ? true : undefined),
        10_000,
        'the worker to purge the volume',
      );
      expect((await t.request('GET', `/v3/volumes/${id}/transitions`)).status).toBe(404);
    } finally {
      await worker.stop();
    }
  });

  it('is what `volstate purge --before` runs, saying what it removed; a bad --before is refused', async () => {
    const id = await deletedVolume();
    await age(id, 10);
    const cli = await volstateArgs('purge');
    const run = (...args: string[]) =>
      new Promise<{ code: number; out: string; err: string }>((resolve) => {
        execFile(
          process.execPath,
          [...cli, ...args],
          { env: { ...process.env, DATABASE_URL: t.db.url }, encoding: 'utf8' },
          (err, out, errOut) => resolve({ code: err ? Number(err.code ?? 1) : 0, out, err: errOut }),
        );
      });
    const bad = await run('--before', 'soon');
    expect(bad.code).toBe(2);
    expect(bad.err).toContain("'soon' is not a duration");
    const done = await run('--before', '7d');
    expect(done.code, done.err).toBe(0);
    expect(done.out).toMatch(
      /volstate: purged what was deleted before .* in [\d.]+ s: 0 attachments, 0 snapshots, 1 volumes, 0 backups, 0 group_snapshots, 0 groups, 0 messages; history:/,
    );
    expect(await t.db.sql`SELECT 1 FROM volumes WHERE id = ${id}`).toHaveLength(0);
  });
});
