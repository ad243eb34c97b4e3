/**
 * Quotas that never drift: usage changes in the transaction of the
 * transition that causes it, with the limit in the WHERE clause. Races run
 * for real (concurrent requests on a pool of connections), and after every
 * scenario the invariant is checked: what a project uses is what its live
 * resources add up to (plus what extends in flight reserve).
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatReport } from '../../src/check/history.ts';
import { foldUsage } from '../../db/quotas.ts';
import { useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ latencyMs: 5 });
const as = (project: string) => ({ 'x-auth-token': `admin:${project}` });

/** Usage as recorded, and as the live resources add it up. */
async function usage(project: string) {
  const recorded = Object.fromEntries(
    (
      await t.db.sql<
        { resource: string; in_use: number }[]
      >`SELECT resource, sum(in_use)::int AS in_use FROM quota_usages WHERE project_id = ${project} GROUP BY resource`
    ).map((r) => [r.resource, r.in_use]),
  );
  const [v] = await t.db.sql<{ n: number; gb: number }[]>`
    SELECT count(*)::int AS n, COALESCE(sum(s.size), 0)::int AS gb FROM volumes d JOIN resource_states s ON s.resource_type = 'volume' AND s.resource_id = d.id
    WHERE d.project_id = ${project} AND s.state <> 'deleted'`;
  const [n] = await t.db.sql<{ n: number; gb: number }[]>`
    SELECT count(*)::int AS n, COALESCE(sum(s.size), 0)::int AS gb FROM snapshots d JOIN resource_states s ON s.resource_type = 'snapshot' AND s.resource_id = d.id
    WHERE d.project_id = ${project} AND s.state <> 'deleted'`;
  const [r] = await t.db.sql<
    { gb: number }[]
  >`SELECT COALESCE(sum(amount), 0)::int AS gb FROM quota_reservations WHERE project_id = ${project}`;
  return {
    recorded: { volumes: recorded.volumes ?? 0, snapshots: recorded.snapshots ?? 0, gigabytes: recorded.gigabytes ?? 0 },
    live: { volumes: v!.n, snapshots: n!.n, gigabytes: v!.gb + n!.gb + r!.gb },
  };
}

async function setQuota(project: string, quota: Record<string, number>) {
  const res = await t.request('PUT', `/v3/${project}/os-quota-sets/${project}`, { quota_set: quota }, as(project));
  expect(res.status, JSON.stringify(res.body)).toBe(200);
}

describe('quotas', () => {
  it('50 concurrent creates under a volumes quota of 10: exactly 10 are made, the rest are 413 (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const p = `aaaaaaaa00000000000000000000010${round}`;
      await setQuota(p, { volumes: 10 });
      const results = await Promise.all(
        Array.from({ length: 50 }, () => t.request('POST', `/v3/${p}/volumes`, { volume: { size: 1 } }, as(p))),
      );
      const made = results.filter((r) => r.status === 202);
      expect(made, `round ${round}`).toHaveLength(10);
      for (const r of results.filter((r) => r.status !== 202)) {
        expect(r.status).toBe(413);
        expect(r.body.overLimit.message).toBe("Maximum number of volumes allowed (10) exceeded for quota 'volumes'.");
      }
      const u = await usage(p);
      expect(u.recorded).toEqual(u.live);
      expect(u.recorded.volumes).toBe(10);
    }
  });

  it('unlimited usage spreads over slots and adds up exactly; a limit set afterwards holds under a race of 30 creates (3 rounds)', async () => {
    for (let round = 0; round < 3; round++) {
      const p = `aaaaaaaa00000000000000000000011${round}`;
      const made = await Promise.all(
        Array.from({ length: 40 }, () => t.request('POST', `/v3/${p}/volumes`, { volume: { size: 2 } }, as(p))),
      );
      expect(made.map((r) => r.status)).toEqual(made.map(() => 202));
      const ids = made.map((r) => r.body.volume.id as string);
      for (const id of ids) await waitStatus(t, 'volumes', id, 'available', 10_000, as(p));
      await Promise.all(ids.slice(0, 15).map((id) => t.request('DELETE', `/v3/${p}/volumes/${id}`, undefined, as(p))));
      for (const id of ids.slice(0, 15)) await waitStatus(t, 'volumes', id, 'gone', 10_000, as(p));
      let u = await usage(p);
      expect(u.recorded).toEqual({ volumes: 25, snapshots: 0, gigabytes: 50 });
      expect(u.recorded).toEqual(u.live);
      // Concurrent transactions wrote to more than one row: no row every create of the project waits on.
      const [spread] = await t.db.sql<
        { slots: number }[]
      >`SELECT count(DISTINCT slot)::int AS slots FROM quota_usages WHERE project_id = ${p} AND resource = 'volumes'`;
      expect(spread!.slots).toBeGreaterThan(1);
      // Now a limit: room for 5 more, whatever the slots hold.
      await setQuota(p, { volumes: 30 });
      const more = await Promise.all(
        Array.from({ length: 30 }, () => t.request('POST', `/v3/${p}/volumes`, { volume: { size: 1 } }, as(p))),
      );
      expect(more.filter((r) => r.status === 202)).toHaveLength(5);
      expect(more.filter((r) => r.status !== 202).map((r) => r.status)).toEqual(Array(25).fill(413));
      u = await usage(p);
      expect(u.recorded.volumes).toBe(30);
      expect(u.recorded, `round ${round}`).toEqual(u.live);
    }
  });

  it('folds the slots back while creates and deletes race, and usage stays exact (5 rounds)', async () => {
    const p = 'aaaaaaaa000000000000000000000012';
    const live: string[] = [];
    let foldedMeanwhile = 0;
    for (let round = 0; round < 5; round++) {
      // Creates and deletes of the project against folds on separate connections, all at once.
      let racing = true;
      const folds = (async () => {
        let n = 0;
        while (racing) n += await foldUsage(t.db.sql, 2);
        return n;
      })();
      const made = await Promise.all(
        Array.from({ length: 12 }, () => t.request('POST', `/v3/${p}/volumes`, { volume: { size: 1 } }, as(p))),
      );
      expect(made.map((r) => r.status)).toEqual(made.map(() => 202));
      live.push(...made.map((r) => r.body.volume.id as string));
      for (const id of live) await waitStatus(t, 'volumes', id, 'available', 10_000, as(p));
      const gone = live.splice(0, 6);
      await Promise.all(gone.map((id) => t.request('DELETE', `/v3/${p}/volumes/${id}`, undefined, as(p))));
      for (const id of gone) await waitStatus(t, 'volumes', id, 'gone', 10_000, as(p));
      racing = false;
      foldedMeanwhile += await folds;
      const u = await usage(p);
      expect(u.recorded, `round ${round}`).toEqual(u.live);
      expect(u.recorded.volumes).toBe(live.length);
    }
    expect(foldedMeanwhile).toBeGreaterThan(0); // the folds did meet the race
    // At rest, one fold leaves at most one slot besides slot 0 for each resource, and the sum unchanged.
    await foldUsage(t.db.sql);
    const rows = await t.db.sql<{ resource: string; others: number }[]>`
      SELECT resource, count(*) FILTER (WHERE slot > 0)::int AS others FROM quota_usages WHERE project_id = ${p} GROUP BY resource`;
    for (const r of rows) expect(r.others, r.resource).toBeLessThanOrEqual(1);
    const u = await usage(p);
    expect(u.recorded).toEqual(u.live);
  });

  it('20 identical concurrent extends: the size and the usage grow once (5 rounds)', async () => {
    for (let round = 0; round < 5; round++) {
      const p = `aaaaaaaa00000000000000000000020${round}`;
      const vol = (await t.request('POST', `/v3/${p}/volumes`, { volume: { size: 2 } }, as(p))).body.volume.id as string;
      await waitStatus(t, 'volumes', vol, 'available', 10_000, as(p));
      const results = await Promise.all(
        Array.from({ length: 20 }, () => t.request('POST', `/v3/${p}/volumes/${vol}/action`, { 'os-extend': { new_size: 3 } }, as(p))),
      );
      expect(
        results.filter((r) => r.status === 202),
        `round ${round}`,
      ).toHaveLength(1);
      await waitStatus(t, 'volumes', vol, 'available', 10_000, as(p));
      const u = await usage(p);
      expect(u.recorded).toEqual({ volumes: 1, snapshots: 0, gigabytes: 3 });
      expect(u.recorded).toEqual(u.live);
    }
  });

  it('extends of many volumes racing under a gigabytes quota: exactly what fits is taken, the rest are 413 changing nothing (15 rounds)', async () => {
    // An extend with no limit to judge reserves and counts in its one statement; with a limit, the
    // limit is judged on the locked usage row: this fails if a limited extend takes the lone path.
    for (let round = 0; round < 15; round++) {
      const p = `aaaaaaaa000000000000000000003${String(round).padStart(3, '0')}`;
      const vols = await Promise.all(
        Array.from(
          { length: 8 },
          async () => (await t.request('POST', `/v3/${p}/volumes`, { volume: { size: 1 } }, as(p))).body.volume.id as string,
        ),
      );
      for (const vol of vols) await waitStatus(t, 'volumes', vol, 'available', 10_000, as(p));
      // 8 GB in use; room for 3 more: three of the eight extends by 1 GB fit.
      await setQuota(p, { gigabytes: 11 });
      const results = await Promise.all(
        vols.map((vol) => t.request('POST', `/v3/${p}/volumes/${vol}/action`, { 'os-extend': { new_size: 2 } }, as(p))),
      );
      expect(results.map((r) => r.status).sort(), `round ${round}`).toEqual([202, 202, 202, 413, 413, 413, 413, 413]);
      for (const r of results.filter((x) => x.status === 413)) expect(r.body.overLimit.message).toMatch(/exceeds allowed gigabytes quota/);
      for (const vol of vols) await waitStatus(t, 'volumes', vol, 'available', 10_000, as(p));
      const u = await usage(p);
      expect(u.recorded, `round ${round}`).toEqual({ volumes: 8, snapshots: 0, gigabytes: 11 });
      expect(u.recorded).toEqual(u.live);
    }
  });

  it('refuses a create or an extend over the gigabytes quota, and a volume over per_volume_gigabytes, changing nothing', async () => {
    const p = 'aaaaaaaa000000000000000000000003';
    await setQuota(p, { gigabytes: 5, per_volume_gigabytes: 4 });
    const big = await t.request('POST', `/v3/${p}/volumes`, { volume: { size: 5 } }, as(p));
    expect(big.status).toBe(413);
    expect(big.body.overLimit.message).toBe('Requested volume size 5G is larger than maximum allowed limit 4G.');
    const vol = (await t.request('POST', `/v3/${p}/volumes`, { volume: { size: 3 } }, as(p))).body.volume.id as string;
    await waitStatus(t, 'volumes', vol, 'available', 10_000, as(p));
    const more = await t.request('POST', `/v3/${p}/volumes`, { volume: { size: 3 } }, as(p));
    expect(more.status).toBe(413);
    expect(more.body.overLimit.message).toBe(
      'Requested volume or snapshot exceeds allowed gigabytes quota. Requested 3G, quota is 5G and 3G has been consumed.',
    );
    // Larger than per_volume_gigabytes allows, as Cinder checks an extend too.
    const extend = await t.request('POST', `/v3/${p}/volumes/${vol}/action`, { 'os-extend': { new_size: 6 } }, as(p));
    expect(extend.status).toBe(413);
    expect(extend.body.overLimit.message).toBe('Requested volume size 6G is larger than maximum allowed limit 4G.');
    // An admin of another project (whose own limit is the default: none) meets the volume's project's.
    const other = 'aaaaaaaa0000000000000000000000ff';
    const byAdmin = await t.request('POST', `/v3/${other}/volumes/${vol}/action`, { 'os-extend': { new_size: 6 } }, as(other));
    expect(byAdmin.status).toBe(413);
    expect(byAdmin.body.overLimit.message).toBe('Requested volume size 6G is larger than maximum allowed limit 4G.');
    expect((await t.request('GET', `/v3/${p}/volumes/${vol}`, undefined, as(p))).body.volume).toMatchObject({
      status: 'available',
      size: 3,
    });
    const snap = await t.request('POST', `/v3/${p}/snapshots`, { snapshot: { volume_id: vol } }, as(p));
    expect(snap.status).toBe(413);
    const u = await usage(p);
    expect(u.recorded).toEqual({ volumes: 1, snapshots: 0, gigabytes: 3 });
    expect(u.recorded).toEqual(u.live);
  });

  it('gives usage back exactly once, whoever ends the operation: delete, force delete, failed extend, reset out of extending', async () => {
    const p = 'aaaaaaaa000000000000000000000004';
    const make = async (size: number) => {
      const id = (await t.request('POST', `/v3/${p}/volumes`, { volume: { size } }, as(p))).body.volume.id as string;
      await waitStatus(t, 'volumes', id, 'available', 10_000, as(p));
      return id;
    };
    const [a, b, c, d] = [await make(1), await make(2), await make(3), await make(4)];
    const snap = (await t.request('POST', `/v3/${p}/snapshots`, { snapshot: { volume_id: a } }, as(p))).body.snapshot.id as string;
    await waitStatus(t, 'snapshots', snap, 'available', 10_000, as(p));
    expect((await usage(p)).recorded).toEqual({ volumes: 4, snapshots: 1, gigabytes: 11 });

    // A failed extend gives its reservation back.
    t.faults.failures = { extend: 1 };
    expect((await t.request('POST', `/v3/${p}/volumes/${b}/action`, { 'os-extend': { new_size: 9 } }, as(p))).status).toBe(202);
    await waitStatus(t, 'volumes', b, 'error_extending', 10_000, as(p));
    t.faults.failures = {};
    // A reset out of a parked extending gives nothing back (a reset reserves nothing), and a force delete ends it.
    expect((await t.request('POST', `/v3/${p}/volumes/${c}/action`, { 'os-reset_status': { status: 'extending' } }, as(p))).status).toBe(
      202,
    );
    expect((await t.request('POST', `/v3/${p}/volumes/${c}/action`, { 'os-force_delete': {} }, as(p))).status).toBe(202);
    await waitStatus(t, 'volumes', c, 'gone', 10_000, as(p));
    expect((await t.request('DELETE', `/v3/${p}/snapshots/${snap}`, undefined, as(p))).status).toBe(202);
    await waitStatus(t, 'snapshots', snap, 'gone', 10_000, as(p));
    expect((await t.request('DELETE', `/v3/${p}/volumes/${d}`, undefined, as(p))).status).toBe(202);
    await waitStatus(t, 'volumes', d, 'gone', 10_000, as(p));
    const u = await usage(p);
    expect(u.recorded).toEqual({ volumes: 2, snapshots: 0, gigabytes: 3 });
    expect(u.recorded).toEqual(u.live);
    expect((await t.db.sql`SELECT count(*)::int AS n FROM quota_reservations WHERE project_id = ${p}`)[0]!.n).toBe(0);
  });

  it("answers Cinder's quota and limits APIs", async () => {
    const p = 'aaaaaaaa000000000000000000000005';
    const vol = (await t.request('POST', `/v3/${p}/volumes`, { volume: { size: 2 } }, as(p))).body.volume.id as string;
    await waitStatus(t, 'volumes', vol, 'available', 10_000, as(p));
    const shown = (await t.request('GET', `/v3/${p}/os-quota-sets/${p}`, undefined, as(p))).body.quota_set;
    expect(shown).toEqual({
      id: p,
      volumes: -1,
      snapshots: -1,
      gigabytes: -1,
      per_volume_gigabytes: -1,
      backups: -1,
      backup_gigabytes: -1,
      groups: -1,
      volumes___DEFAULT__: -1,
      gigabytes___DEFAULT__: -1,
      snapshots___DEFAULT__: -1,
    });
    const used = (await t.request('GET', `/v3/${p}/os-quota-sets/${p}?usage=true`, undefined, as(p))).body.quota_set;
    expect(used.gigabytes).toEqual({ limit: -1, in_use: 2, reserved: 0 });
    await setQuota(p, { volumes: 3, gigabytes: 10 });
    expect((await t.request('PUT', `/v3/${p}/os-quota-sets/${p}`, { quota_set: { gigabytes: 1 } }, as(p))).status).toBe(400);
    expect((await t.request('PUT', `/v3/${p}/os-quota-sets/${p}`, { quota_set: { bogus: 1 } }, as(p))).status).toBe(400);
    const limits = (await t.request('GET', `/v3/${p}/limits`, undefined, as(p))).body.limits;
    expect(limits).toEqual({
      rate: [],
      absolute: {
        maxTotalVolumes: 3,
        maxTotalSnapshots: -1,
        maxTotalVolumeGigabytes: 10,
        maxTotalBackups: -1,
        maxTotalBackupGigabytes: -1,
        totalVolumesUsed: 1,
        totalSnapshotsUsed: 0,
        totalGigabytesUsed: 2,
        totalBackupsUsed: 0,
        totalBackupGigabytesUsed: 0,
      },
    });
    expect((await t.request('DELETE', `/v3/${p}/os-quota-sets/${p}`, undefined, as(p))).status).toBe(200);
    expect((await t.request('GET', `/v3/${p}/os-quota-sets/${p}`, undefined, as(p))).body.quota_set.volumes).toBe(-1);
    expect((await t.request('GET', `/v3/${p}/os-quota-sets/${p}/defaults`, undefined, as(p))).body.quota_set.gigabytes).toBe(-1);
    const cls = await t.request('PUT', `/v3/${p}/os-quota-class-sets/gold`, { quota_class_set: { volumes: 7 } }, as(p));
    expect(cls.body.quota_class_set).toMatchObject({ volumes: 7, gigabytes: -1 });
    expect((await t.request('GET', `/v3/${p}/os-quota-class-sets/gold`, undefined, as(p))).body.quota_class_set).toMatchObject({
      id: 'gold',
      volumes: 7,
    });
  });

  it('per-type quotas: volumes_<type>, gigabytes_<type>, snapshots_<type> are kept by type, shown by name, and move with a retype', async () => {
    const p = 'aaaaaaaa000000000000000000000006';
    const admin = as(p);
    const mk = async (name: string) =>
      (await t.request('POST', `/v3/${p}/types`, { volume_type: { name } }, admin)).body.volume_type.id as string;
    const [gold, iron] = [await mk('gold'), await mk('iron')];
    await setQuota(p, { volumes_gold: 1, gigabytes_iron: 3 });
    const vol = async (type: string, size = 1) => t.request('POST', `/v3/${p}/volumes`, { volume: { size, volume_type: type } }, admin);
    const a = await vol('gold', 2);
    expect(a.status).toBe(202);
    await waitStatus(t, 'volumes', a.body.volume.id, 'available', 10_000, admin);
    const over = await vol('gold');
    expect(over.status).toBe(413);
    expect(over.body.overLimit.message).toBe("Maximum number of volumes allowed (1) exceeded for quota 'volumes_gold'.");
    const big = await vol('iron', 4);
    expect(big.body.overLimit.message).toBe(
      'Requested volume or snapshot exceeds allowed gigabytes_iron quota. Requested 4G, quota is 3G and 0G has been consumed.',
    );
    const b = await vol('iron', 2);
    expect(b.status).toBe(202);
    await waitStatus(t, 'volumes', b.body.volume.id, 'available', 10_000, admin);
    // A retype into a type without room is refused and changes nothing; one with room moves the counts.
    const retype = (id: string, to: string) =>
      t.request('POST', `/v3/${p}/volumes/${id}/action`, { 'os-retype': { new_type: to, migration_policy: 'never' } }, admin);
    expect((await retype(b.body.volume.id, 'gold')).status).toBe(413);
    expect((await retype(a.body.volume.id, 'iron')).status).toBe(413);
    await setQuota(p, { gigabytes_iron: 10 });
    expect((await retype(a.body.volume.id, 'iron')).status).toBe(202);
    await waitStatus(t, 'volumes', a.body.volume.id, 'available', 10_000, admin);
    const used = (await t.request('GET', `/v3/${p}/os-quota-sets/${p}?usage=true`, undefined, admin)).body.quota_set;
    expect(used.volumes_gold).toEqual({ limit: 1, in_use: 0, reserved: 0 });
    expect(used.volumes_iron).toEqual({ limit: -1, in_use: 2, reserved: 0 });
    expect(used.gigabytes_iron).toEqual({ limit: 10, in_use: 4, reserved: 0 });
    // Renaming a type keeps its quotas and usage: they are kept by the type's id.
    expect((await t.request('PUT', `/v3/${p}/types/${iron}`, { volume_type: { name: 'steel' } }, admin)).status).toBe(200);
    const renamed = (await t.request('GET', `/v3/${p}/os-quota-sets/${p}?usage=true`, undefined, admin)).body.quota_set;
    expect(renamed.gigabytes_steel).toEqual({ limit: 10, in_use: 4, reserved: 0 });
    expect(renamed.gigabytes_iron).toBeUndefined();
    // Class defaults take per-type names too (Tempest's test_update_default_quota).
    const cls = await t.request('PUT', `/v3/${p}/os-quota-class-sets/default`, { quota_class_set: { snapshots_gold: 5 } }, admin);
    expect(cls.body.quota_class_set.snapshots_gold).toBe(5);
    expect((await t.request('GET', `/v3/${p}/os-quota-sets/${p}/defaults`, undefined, admin)).body.quota_set.snapshots_gold).toBe(5);
    expect(
      (await t.request('PUT', `/v3/${p}/os-quota-class-sets/default`, { quota_class_set: { snapshots_gold: -1 } }, admin)).status,
    ).toBe(200);
    expect((await t.request('PUT', `/v3/${p}/os-quota-sets/${p}`, { quota_set: { volumes_nosuchtype: 1 } }, admin)).status).toBe(400);
    void gold;
    const report = await checkHistory(t.db.sql, { atRest: true });
    expect(
      report.violations.filter((v) => v.kind === 'quota-usage'),
      formatReport(report),
    ).toEqual([]);
  });
});
