/**
 * Cinder's known races (../shared/reference/cinder-state-model.md §7),
 * each replayed over real HTTP many times, with the invariants checked
 * after every round rather than one lucky interleaving. (R5, a service
 * dying mid cascade-delete, needs real process kills: it is in
 * test/concurrency/nodes.test.ts.)
 */
import { describe, expect, it } from 'vitest';
import { MODELS } from '../../machines/index.ts';
import { availableVolume, eventually, HEADERS, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp({ listen: true, latencyMs: 15, concurrency: 16 });
const ROUNDS = 8;
const CONNECTOR = { initiator: 'iqn.x', host: 'compute-1', mountpoint: '/dev/vdb' };

async function http(method: string, path: string, body?: unknown) {
  const r = await fetch(`${t.url}${path}`, { method, headers: HEADERS, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

const stateOf = async (id: string) => (await t.db.sql`SELECT * FROM resource_states WHERE resource_id = ${id}`)[0]!;

/** Every resource reached a state with no worker step (nothing left in flight). */
async function settled(ids: string[]) {
  return eventually(
    async () => {
      const rows = await t.db.sql`SELECT resource_type, state, owner FROM resource_states WHERE resource_id IN ${t.db.sql(ids)}`;
      const idle = (r: { resource_type: string; state: string }) =>
        !MODELS[r.resource_type as keyof typeof MODELS].index.meta(r.state).step;
      return rows.every((r) => r.owner === null && idle(r as never)) ? rows : undefined;
    },
    15_000,
    'every resource to settle',
  );
}

/** Did `first`'s event happen before `second`'s? (the history's global order) */
async function before(first: [string, string], second: [string, string]) {
  const at = async ([id, event]: [string, string]) =>
    Number((await t.db.sql`SELECT id FROM state_transitions WHERE resource_id = ${id} AND event = ${event} ORDER BY id LIMIT 1`)[0]?.id);
  return (await at(first)) < (await at(second));
}

async function snapshotOf(volumeId: string) {
  const res = await http('POST', '/v3/snapshots', { snapshot: { volume_id: volumeId } });
  await waitStatus(t, 'snapshots', res.body.snapshot.id, 'available');
  return res.body.snapshot.id as string;
}

describe('R1: concurrent clones of one source', () => {
  it('all succeed, each from the source, and the source is held until the last one ends', async () => {
    for (let round = 0; round < ROUNDS / 2; round++) {
      const source = await availableVolume(t, 2);
      const clones = await Promise.all(Array.from({ length: 10 }, () => http('POST', '/v3/volumes', { volume: { source_volid: source } })));
      expect(clones.map((c) => c.status)).toEqual(Array(10).fill(202));
      // While they are being made, the source cannot be deleted (busy, not invalid).
      const refused = await http('DELETE', `/v3/volumes/${source}`);
      if (refused.status === 409) expect(refused.body.conflictingRequest).toMatchObject({ type: 'VolumeIsBusy', status: 'available' });
      else expect(refused.status).toBe(202); // all clones were already done
      const ids = clones.map((c) => c.body.volume.id as string);
      await Promise.all(ids.map((id) => waitStatus(t, 'volumes', id, 'available')));
      for (const id of ids) expect(t.backend.origins.get(id)).toBe(`volume:${source}`);
      expect(await stateOf(source)).toMatchObject({ readers: 0 });
      const [leases] = await t.db.sql`SELECT count(*)::int AS n FROM leases WHERE source_id = ${source}`;
      expect(leases!.n).toBe(0);
    }
  });
});

describe('R2: delete the source while a volume is being made from it', () => {
  it('either the delete is refused and the clone completes, or the delete came first and the clone is refused', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const source = await availableVolume(t);
      const [clone, del] = await Promise.all([
        http('POST', '/v3/volumes', { volume: { source_volid: source } }),
        http('DELETE', `/v3/volumes/${source}`),
      ]);
      if (clone.status === 202) {
        // The clone holds the source: it never fails for lack of it, and a
        // delete succeeds only once the clone is done.
        await waitStatus(t, 'volumes', clone.body.volume.id, 'available');
        expect([409, 202]).toContain(del.status);
        if (del.status === 409) expect(del.body.conflictingRequest.type).toBe('VolumeIsBusy');
        else expect(await before([clone.body.volume.id, 'BACKEND_CREATED'], [source, 'DELETE'])).toBe(true);
      } else {
        expect(del.status).toBe(202);
        expect([409, 404]).toContain(clone.status);
      }
    }
  });

  it('the same for a volume being made from a snapshot and the snapshot delete', async () => {
    const volumeId = await availableVolume(t);
    for (let round = 0; round < ROUNDS; round++) {
      const snap = await snapshotOf(volumeId);
      const [made, del] = await Promise.all([
        http('POST', '/v3/volumes', { volume: { snapshot_id: snap } }),
        http('DELETE', `/v3/snapshots/${snap}`),
      ]);
      expect(made.status === 202 || del.status === 202).toBe(true);
      if (made.status === 202) {
        await waitStatus(t, 'volumes', made.body.volume.id, 'available');
        if (del.status === 202) expect(await before([made.body.volume.id, 'BACKEND_CREATED'], [snap, 'DELETE'])).toBe(true);
        else {
          expect(del.body.conflictingRequest.type).toBe('SnapshotIsBusy');
          await http('DELETE', `/v3/snapshots/${snap}`);
        }
      } else expect([409, 404]).toContain(made.status);
      await waitStatus(t, 'snapshots', snap, 'gone');
    }
  });
});

describe('R3: attachment delete against volume delete', () => {
  it('never deletes a volume that still has an attachment, and the status has one writer', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const volumeId = await availableVolume(t);
      const a = await http('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId, connector: CONNECTOR } });
      await http('POST', `/v3/attachments/${a.body.attachment.id}/action`, { 'os-complete': null });
      expect((await stateOf(volumeId)).state).toBe('in-use');
      const [detach, del, del2] = await Promise.all([
        http('DELETE', `/v3/attachments/${a.body.attachment.id}`),
        http('DELETE', `/v3/volumes/${volumeId}`),
        http('DELETE', `/v3/volumes/${volumeId}`),
      ]);
      expect(detach.status).toBe(200);
      const deletes = [del, del2].filter((d) => d.status === 202).length;
      expect(deletes).toBeLessThanOrEqual(1);
      for (const d of [del, del2]) expect([202, 400, 409, 404]).toContain(d.status);
      await settled([volumeId]);
      const row = await stateOf(volumeId);
      expect(row.att_attached + row.att_reserved + row.att_attaching).toBe(0);
      expect(row.state).toBe(deletes === 1 ? 'deleted' : 'available');
      // No write after the end: the history's last word is the state.
      const [last] = await t.db.sql`SELECT to_state FROM state_transitions WHERE resource_id = ${volumeId} ORDER BY version DESC LIMIT 1`;
      expect(last!.to_state).toBe(row.state);
    }
  });
});

describe('R4: parallel attachment creates and connector updates', () => {
  it('a plain volume takes exactly one of ten concurrent attachments; a multiattach one takes all', async () => {
    for (let round = 0; round < ROUNDS / 2; round++) {
      for (const multiattach of [false, true]) {
        const volumeId = await availableVolume(t, 1, { multiattach });
        const results = await Promise.all(
          Array.from({ length: 10 }, (_, i) =>
            http('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId, instance_uuid: `server-${i}` } }),
          ),
        );
        const won = results.filter((r) => r.status === 200).length;
        expect(won).toBe(multiattach ? 10 : 1);
        for (const r of results.filter((r) => r.status !== 200)) expect(r.body.badRequest.message).toMatch(/not multiattach/);
        expect(await stateOf(volumeId)).toMatchObject({ state: 'reserved', att_reserved: won });
        const [rows] = await t.db.sql`SELECT count(*)::int AS n FROM attachments WHERE volume_id = ${volumeId}`;
        expect(rows!.n).toBe(won);
      }
    }
  });

  it('ten concurrent connector updates of one attachment: exactly one connects', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const volumeId = await availableVolume(t);
      const a = await http('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId } });
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          http('PUT', `/v3/attachments/${a.body.attachment.id}`, { attachment: { connector: { ...CONNECTOR, host: `compute-${i}` } } }),
        ),
      );
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      for (const r of results.filter((r) => r.status !== 200)) expect(r.status).toBe(409);
      // One connection on the backend: the refused ones never reached the driver.
      expect(t.backend.connections.get(volumeId)?.size).toBe(1);
      expect(await stateOf(volumeId)).toMatchObject({ state: 'attaching', att_attaching: 1, att_reserved: 0 });
    }
  });
});

describe('R7: two-step transitions move together or not at all', () => {
  it('revert against deleting its snapshot: never a volume stuck reverting or a snapshot stuck restoring', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const volumeId = await availableVolume(t);
      const snap = await snapshotOf(volumeId);
      const [revert, del] = await Promise.all([
        http('POST', `/v3/volumes/${volumeId}/action`, { revert: { snapshot_id: snap } }),
        http('DELETE', `/v3/snapshots/${snap}`),
      ]);
      expect(revert.status === 202 || del.status === 202).toBe(true);
      // Both may win only one after the other: the revert ended before the delete began.
      if (revert.status === 202 && del.status === 202) expect(await before([volumeId, 'REVERTED'], [snap, 'DELETE'])).toBe(true);
      await settled([volumeId, snap]);
      expect((await stateOf(volumeId)).state).toBe('available');
      const s = await stateOf(snap);
      expect(s.state).toBe(del.status === 202 ? 'deleted' : 'available');
      expect(s.readers).toBe(0);
    }
  });

  it('cascade delete against a new snapshot: no volume deleted around a live snapshot', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const volumeId = await availableVolume(t);
      const first = await snapshotOf(volumeId);
      const [cascade, snap] = await Promise.all([
        http('DELETE', `/v3/volumes/${volumeId}?cascade=True`),
        http('POST', '/v3/snapshots', { snapshot: { volume_id: volumeId } }),
      ]);
      const ids = [volumeId, first, ...(snap.status === 202 ? [snap.body.snapshot.id] : [])];
      await settled(ids);
      const volume = await stateOf(volumeId);
      if (cascade.status === 202) {
        expect(volume.state).toBe('deleted');
        for (const id of ids) expect((await stateOf(id)).state).toBe('deleted');
      } else {
        expect(cascade.status).toBe(409); // the new snapshot was reading the volume
        expect(volume.state).toBe('available');
        expect(volume.dependents).toBe(snap.status === 202 ? 2 : 1);
      }
    }
  });

  it('os-complete against deleting the attachment: the volume follows whichever won', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const volumeId = await availableVolume(t);
      const a = await http('POST', '/v3/attachments', { attachment: { volume_uuid: volumeId, connector: CONNECTOR } });
      const id = a.body.attachment.id;
      const [complete, del] = await Promise.all([
        http('POST', `/v3/attachments/${id}/action`, { 'os-complete': null }),
        http('DELETE', `/v3/attachments/${id}`),
      ]);
      expect(del.status).toBe(200); // a delete wins from attaching or attached
      expect([204, 400, 404, 409]).toContain(complete.status);
      const row = await stateOf(volumeId);
      expect(row).toMatchObject({ state: 'available', att_attached: 0, att_attaching: 0 });
    }
  });
});
