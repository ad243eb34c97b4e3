/**
 * A group snapshot against a change of one of its members, each race run
 * many times through the API, the two requests sent together (separate
 * connections, separate transactions):
 *
 * - against the member's extend: a group snapshot is all of the group or
 *   nothing. Either it is accepted, holding every member as a reader from
 *   its one transaction, and the extend is refused (or, when every copy was
 *   taken before the extend's transaction, the extend follows it); or the
 *   extend went first and the group snapshot is refused naming that member,
 *   with no member snapshot made. Cinder read-checks each member and inserts
 *   the snapshots one by one: a member can change between.
 * - against the member's delete: the same, and a delete is never accepted
 *   while a member snapshot of it exists.
 *
 * After each round: 0 or every member snapshot, never some; then the
 * history checker, at rest: 0 violations.
 */
import { describe, expect, it } from 'vitest';
import { checkHistory, formatReport } from '../../src/check/history.ts';
import { availableVolume, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ latencyMs: 5 });
const ROUNDS = 20;

async function group(name: string): Promise<{ group: string; type: string }> {
  const vt = (await t.request('POST', '/v3/types', { volume_type: { name: `vt-${name}` } })).body.volume_type.id as string;
  const gt = (await t.request('POST', '/v3/group_types', { group_type: { name: `gt-${name}` } })).body.group_type.id as string;
  const res = await t.request('POST', '/v3/groups', { group: { name, group_type: gt, volume_types: [vt] } });
  expect(res.status, JSON.stringify(res.body)).toBe(202);
  await waitStatus(t, 'groups', res.body.group.id, 'available');
  return { group: res.body.group.id as string, type: vt };
}

/** The live snapshots of these volumes. */
async function snapshotsOf(volumes: string[]): Promise<{ id: string; volume_id: string; group_snapshot_id: string | null }[]> {
  return t.db.sql<{ id: string; volume_id: string; group_snapshot_id: string | null }[]>`
    SELECT id, volume_id, group_snapshot_id FROM snapshots WHERE volume_id = ANY(${volumes}::uuid[]) AND deleted_at IS NULL`;
}

async function deleteGroupSnapshot(id: string) {
  expect((await t.request('DELETE', `/v3/group_snapshots/${id}`)).status).toBe(202);
  await waitStatus(t, 'group_snapshots', id, 'gone');
}

describe('group snapshot races', () => {
  it(`against a member's extend: the whole group or nothing, ${ROUNDS} rounds`, async () => {
    const { group: g, type } = await group('race-extend');
    const members = [
      await availableVolume(t, 1, { volume_type: type, group_id: g }),
      await availableVolume(t, 1, { volume_type: type, group_id: g }),
    ];
    const outcomes = { snapshot: 0, extend: 0, both: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const target = members[round % 2]!;
      const size = (await t.request('GET', `/v3/volumes/${target}`)).body.volume.size as number;
      const [gs, ext] = await Promise.all([
        t.request('POST', '/v3/group_snapshots', { group_snapshot: { group_id: g, name: `r${round}` } }),
        t.request('POST', `/v3/volumes/${target}/action`, { 'os-extend': { new_size: size + 1 } }),
      ]);
      const snaps = await snapshotsOf(members);
      if (gs.status === 202) {
        // Every member, in this one group snapshot.
        expect(snaps.map((s) => s.volume_id).sort()).toEqual([...members].sort());
        expect(new Set(snaps.map((s) => s.group_snapshot_id))).toEqual(new Set([gs.body.group_snapshot.id]));
        await waitStatus(t, 'group_snapshots', gs.body.group_snapshot.id, 'available');
        if (ext.status === 202) outcomes.both++;
        else {
          outcomes.snapshot++;
          expect(ext.status, JSON.stringify(ext.body)).toBe(409);
        }
        await deleteGroupSnapshot(gs.body.group_snapshot.id);
      } else {
        outcomes.extend++;
        expect(ext.status, JSON.stringify(ext.body)).toBe(202);
        expect(gs.status, JSON.stringify(gs.body)).toBe(409);
        expect(JSON.stringify(gs.body)).toContain(target);
        expect(snaps).toEqual([]);
      }
      if (ext.status === 202) await waitStatus(t, 'volumes', target, 'available');
    }
    console.log(`group snapshot vs extend: ${JSON.stringify(outcomes)}`);
    expect(outcomes.snapshot + outcomes.extend + outcomes.both).toBe(ROUNDS);
  }, 120_000);

  it(`against a member's delete: the whole group or nothing, no delete under a member snapshot, ${ROUNDS} rounds`, async () => {
    const { group: g, type } = await group('race-delete');
    const keeper = await availableVolume(t, 1, { volume_type: type, group_id: g });
    const outcomes = { snapshot: 0, delete: 0, deletedFirst: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const victim = await availableVolume(t, 1, { volume_type: type, group_id: g });
      const [gs, del] = await Promise.all([
        t.request('POST', '/v3/group_snapshots', { group_snapshot: { group_id: g, name: `d${round}` } }),
        t.request('DELETE', `/v3/volumes/${victim}`),
      ]);
      const snaps = await snapshotsOf([keeper, victim]);
      if (gs.status === 202 && del.status === 202) {
        // The delete ran to its end (the volume gone, out of the group) before the group snapshot
        // began: the group then had one member, and its snapshot is of that member alone. Seen on a
        // busy machine, where the fake driver's delete finishes before the other request is served.
        outcomes.deletedFirst++;
        expect(snaps.map((s) => s.volume_id)).toEqual([keeper]);
        const [order] = await t.db.sql<{ deleted: number; snapshotted: number }[]>`
          SELECT (SELECT id FROM state_transitions WHERE resource_id = ${victim} AND event = 'DELETED')::float8 AS deleted,
                 (SELECT id FROM state_transitions WHERE resource_id = ${gs.body.group_snapshot.id} AND from_state IS NULL)::float8 AS snapshotted`;
        expect(order!.deleted).toBeLessThan(order!.snapshotted);
        await waitStatus(t, 'group_snapshots', gs.body.group_snapshot.id, 'available');
        await deleteGroupSnapshot(gs.body.group_snapshot.id);
      } else if (gs.status === 202) {
        outcomes.snapshot++;
        expect(del.status, JSON.stringify(del.body)).not.toBe(202);
        expect(snaps.map((s) => s.volume_id).sort()).toEqual([keeper, victim].sort());
        await waitStatus(t, 'group_snapshots', gs.body.group_snapshot.id, 'available');
        await deleteGroupSnapshot(gs.body.group_snapshot.id);
        expect((await t.request('DELETE', `/v3/volumes/${victim}`)).status).toBe(202);
      } else {
        outcomes.delete++;
        expect(del.status, JSON.stringify(del.body)).toBe(202);
        expect(JSON.stringify(gs.body)).toContain(victim);
        expect(snaps).toEqual([]);
      }
      await waitStatus(t, 'volumes', victim, 'gone');
    }
    console.log(`group snapshot vs delete: ${JSON.stringify(outcomes)}`);
    expect(outcomes.snapshot + outcomes.delete + outcomes.deletedFirst).toBe(ROUNDS);
    // The group counts exactly its one remaining member.
    const [row] = await t.db.sql<
      { members: number }[]
    >`SELECT members FROM resource_states WHERE resource_type = 'group' AND resource_id = ${g}`;
    expect(row!.members).toBe(1);
    await t.worker!.idle();
    const report = await checkHistory(t.db.sql, { atRest: true });
    expect(formatReport(report)).toMatch(/: 0 violations$/);
  }, 120_000);
});
