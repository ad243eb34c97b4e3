/**
 * A volume deleted and purged between a request's first read and its
 * transaction: the storm test's attach 500 (issue 18), made to happen on
 * demand instead of once in a few loaded runs.
 *
 * The interleaving, forced: a request reads the volume (live), then opens
 * its transaction, whose first statement locks the volume's state row. A
 * second session holds that lock first; once the request is seen waiting
 * on it (pg_blocking_pids, an event, not a delay), that session does to
 * the volume what the delete's last CAS and retention do in the real race
 * — the final state, `deleted_at`, then the real `purge()` — and commits.
 * The request's lock then finds no row.
 *
 * Every request that reads the volume before its transaction must answer
 * 404 (the volume is gone), never 500, and leave nothing behind. Before the
 * fix, POST /attachments inserted the attachment, whose foreign key names
 * the volume, before the volume's CAS: a foreign-key violation, a 500.
 */
import { describe, expect, it } from 'vitest';
import { purge } from '../../db/retention.ts';
import { MODELS } from '../../machines/index.ts';
import { availableVolume, eventually, useApp, type Reply } from '../helpers/app.ts';

const t = useApp();
const FINAL = MODELS.volume.states.filter((s) => MODELS.volume.index.isFinal(s));

/** Run `request` on a fresh volume, deleting and purging the volume while the request waits for its row lock. */
async function vanishDuring(request: (volumeId: string) => Promise<Reply>): Promise<Reply> {
  const id = await availableVolume(t);
  const blocker = await t.db.sql.reserve();
  try {
    await blocker`BEGIN`;
    await blocker`SELECT 1 FROM resource_states WHERE resource_type = 'volume' AND resource_id = ${id} FOR UPDATE`;
    const [{ pid }] = (await blocker`SELECT pg_backend_pid() AS pid`) as unknown as [{ pid: number }];
    const answer = request(id);
    await eventually(
      async () =>
        (await t.db.sql`SELECT 1 AS one FROM pg_stat_activity WHERE ${pid} = ANY(pg_blocking_pids(pid))`).length > 0 ? true : undefined,
      30_000,
      'the request to wait for the volume row',
    );
    // What the delete's final CAS leaves (db/cas.ts, the retired CTE), then retention.
    await blocker`UPDATE resource_states SET state = ${FINAL[0]!}, version = version + 1 WHERE resource_type = 'volume' AND resource_id = ${id}`;
    await blocker`UPDATE volumes SET deleted_at = now() - interval '1 minute' WHERE id = ${id}`;
    const purged = await purge(blocker as never, new Date());
    expect(purged.rows.volumes, 'the volume was purged').toBe(1);
    await blocker`COMMIT`;
    return await answer;
  } finally {
    blocker.release();
  }
}

const CASES: [string, (id: string) => Promise<Reply>][] = [
  [
    'POST /attachments with a connector',
    (id) =>
      t.request('POST', '/v3/attachments', {
        attachment: { volume_uuid: id, instance_uuid: crypto.randomUUID(), connector: { host: 'h1' } },
      }),
  ],
  [
    'POST /attachments, a reservation',
    (id) => t.request('POST', '/v3/attachments', { attachment: { volume_uuid: id, instance_uuid: crypto.randomUUID() } }),
  ],
  ['os-reserve', (id) => t.request('POST', `/v3/volumes/${id}/action`, { 'os-reserve': null })],
  [
    'os-attach',
    (id) => t.request('POST', `/v3/volumes/${id}/action`, { 'os-attach': { instance_uuid: crypto.randomUUID(), mountpoint: '/dev/vdb' } }),
  ],
  ['a snapshot', (id) => t.request('POST', '/v3/snapshots', { snapshot: { volume_id: id } })],
  ['a clone', (id) => t.request('POST', '/v3/volumes', { volume: { source_volid: id } })],
  [
    'a transfer',
    (id) => t.request('POST', '/v3/volume-transfers', { transfer: { volume_id: id } }, { 'openstack-api-version': 'volume 3.55' }),
  ],
  ['os-extend', (id) => t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } })],
  ['delete', (id) => t.request('DELETE', `/v3/volumes/${id}`)],
];

describe('a volume deleted and purged while a request waits for it', () => {
  it.each(CASES)('%s answers 404 and leaves nothing behind', async (_what, request) => {
    const before = await t.db.sql<
      { n: number }[]
    >`SELECT (SELECT count(*) FROM attachments)::int + (SELECT count(*) FROM snapshots)::int + (SELECT count(*) FROM transfers)::int AS n`;
    const seen = t.serverErrors.length;
    const reply = await vanishDuring(request);
    expect(t.serverErrors.slice(seen), 'the server answered a 5xx').toEqual([]);
    expect(reply.status, JSON.stringify(reply.body)).toBe(404);
    expect(JSON.stringify(reply.body)).toMatch(/could not be found/);
    const after = await t.db.sql<
      { n: number }[]
    >`SELECT (SELECT count(*) FROM attachments)::int + (SELECT count(*) FROM snapshots)::int + (SELECT count(*) FROM transfers)::int AS n`;
    expect(after[0]!.n, 'no attachment, snapshot or transfer was left').toBe(before[0]!.n);
  });
});
