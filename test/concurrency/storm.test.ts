/**
 * The mixed storm that once answered a 500 (a deadlock between a snapshot
 * create and a cascade delete): 16 clients over real HTTP, each drawing
 * operations at random — snapshot create and delete, clone, attach,
 * complete, detach, extend, delete and cascade delete — on 10 volumes that
 * are replaced as they go, with a worker running them through a slow
 * backend so that operations overlap. Several rounds.
 *
 * Every answer must be a success or a clean refusal (4xx): never a 5xx.
 * After each round, once at rest, the invariants of the state rows hold:
 * no negative counters, no reader or dependent left without a lease, and
 * every volume's attachment counts equal to its live attachments. Retention
 * purges what is deleted as the storm runs, and the history checker still
 * passes on what remains.
 */
import { describe, expect, it } from 'vitest';
import { MODELS } from '../../machines/index.ts';
import { purge } from '../../db/retention.ts';
import { checkHistory, formatReport } from '../../src/check/history.ts';
import { availableVolume, HEADERS, useApp } from '../helpers/app.ts';

const ATTACHMENT_GONE = MODELS.attachment.states.filter((s) => MODELS.attachment.index.isFinal(s));

const t = useApp({ listen: true, latencyMs: 5, concurrency: 16 });
const CLIENTS = 16;
const VOLUMES = 10;
const ROUNDS = 4;
const OPS_PER_CLIENT = 40;

/** A small deterministic generator, so a failing round can be told by its seed. */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

async function call(method: string, path: string, body?: unknown, version = '3.70') {
  const r = await fetch(`${t.url}${path}`, {
    method,
    headers: { ...HEADERS, 'openstack-api-version': `volume ${version}` },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await r.text();
  return { status: r.status, body: text ? JSON.parse(text) : null };
}

/** The id of the volume's first snapshot or attachment, if it has one now. */
async function firstOf(collection: 'snapshots' | 'attachments', volumeId: string): Promise<string | undefined> {
  const list = await call('GET', `/v3/${collection}?volume_id=${volumeId}`);
  return (list.body?.[collection]?.[0] as { id: string } | undefined)?.id;
}

describe(`a mixed storm: ${CLIENTS} clients, ${VOLUMES} volumes, ${ROUNDS} rounds`, () => {
  it('answers no 5xx, and the state rows are consistent at rest after every round', async () => {
    const statuses = new Map<number, number>();
    const fives: string[] = [];
    const deadlockCount = async () =>
      (await t.db.sql<{ n: number }[]>`SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()`)[0]!.n;
    const deadlocksBefore = await deadlockCount();
    let purged = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const volumes = await Promise.all(Array.from({ length: VOLUMES }, (_, i) => availableVolume(t, 1, { multiattach: i % 3 === 0 })));
      const pick = <T>(r: () => number, xs: T[]) => xs[Math.floor(r() * xs.length)]!;
      const client = async (c: number) => {
        const r = rng(round * 1000 + c);
        for (let i = 0; i < OPS_PER_CLIENT; i++) {
          const v = pick(r, volumes);
          const op = pick(r, ['snap', 'snap', 'snapdel', 'clone', 'attach', 'complete', 'detach', 'extend', 'delete', 'cascade']);
          let res: { status: number; body: any } | undefined;
          switch (op) {
            case 'snap':
              res = await call('POST', '/v3/snapshots', { snapshot: { volume_id: v, force: true } }, '3.65');
              break;
            case 'snapdel': {
              const s = await firstOf('snapshots', v);
              if (s) res = await call('DELETE', `/v3/snapshots/${s}`);
              break;
            }
            case 'clone':
              res = await call('POST', '/v3/volumes', { volume: { source_volid: v } });
              if (res.status === 202) volumes.push(res.body.volume.id);
              break;
            case 'attach':
              res = await call('POST', '/v3/attachments', {
                attachment: { volume_uuid: v, instance_uuid: crypto.randomUUID(), connector: { host: `h${c}` } },
              });
              break;
            case 'complete': {
              const a = await firstOf('attachments', v);
              if (a) res = await call('POST', `/v3/attachments/${a}/action`, { 'os-complete': null });
              break;
            }
            case 'detach': {
              const a = await firstOf('attachments', v);
              if (a) res = await call('DELETE', `/v3/attachments/${a}`);
              break;
            }
            case 'extend':
              res = await call('POST', `/v3/volumes/${v}/action`, { 'os-extend': { new_size: 2 + Math.floor(r() * 3) } });
              break;
            case 'delete':
              res = await call('DELETE', `/v3/volumes/${v}`);
              break;
            case 'cascade':
              res = await call('DELETE', `/v3/volumes/${v}?cascade=True`);
              break;
          }
          if (!res) continue;
          statuses.set(res.status, (statuses.get(res.status) ?? 0) + 1);
          if (res.status >= 500) fives.push(`${op} on ${v}: ${res.status} ${JSON.stringify(res.body)}`);
        }
      };
      // Meanwhile, retention runs flat out: whatever is deleted is purged at once (db/retention.ts).
      let storming = true;
      const purging = (async () => {
        while (storming) {
          const report = await purge(t.db.sql, new Date(), 50);
          purged += report.rows.volumes + report.rows.snapshots + report.rows.attachments;
          await new Promise((r) => setTimeout(r, 5));
        }
      })();
      await Promise.all(Array.from({ length: CLIENTS }, (_, c) => client(c)));
      storming = false;
      await purging;
      // The answers and what the server logged for them, in the failure itself (a report keeps only the message).
      expect(fives, `round ${round}: 5xx answers:\n${fives.join('\n')}\nthe server said:\n${t.serverErrors.join('\n')}`).toEqual([]);

      // At rest: no row owned or in a worker step (the slow backend has finished).
      await t.worker!.idle();
      const broken = await t.db.sql`
        SELECT s.resource_type, s.resource_id, s.state, s.readers, s.dependents,
               (SELECT count(*)::int FROM leases l WHERE l.source_type = s.resource_type AND l.source_id = s.resource_id AND l.kind = 'reader') AS reader_leases,
               (SELECT count(*)::int FROM leases l WHERE l.source_type = s.resource_type AND l.source_id = s.resource_id AND l.kind = 'dependent') AS dependent_leases
        FROM resource_states s
        WHERE s.readers <> (SELECT count(*) FROM leases l WHERE l.source_type = s.resource_type AND l.source_id = s.resource_id AND l.kind = 'reader')
           OR s.dependents <> (SELECT count(*) FROM leases l WHERE l.source_type = s.resource_type AND l.source_id = s.resource_id AND l.kind = 'dependent')`;
      expect(broken, `round ${round}: counters out of step with their leases`).toEqual([]);
      const counts = await t.db.sql`
        SELECT v.resource_id, v.att_reserved + v.att_attaching + v.att_attached + v.att_detaching + v.att_error AS counted,
               (SELECT count(*)::int FROM attachments a JOIN resource_states x ON x.resource_type = 'attachment' AND x.resource_id = a.id
                WHERE a.volume_id = v.resource_id AND x.state <> ALL(${ATTACHMENT_GONE})) AS live
        FROM resource_states v WHERE v.resource_type = 'volume'`;
      for (const row of counts) expect(row.counted, `volume ${row.resource_id}: attachment counts`).toBe(row.live);
      // And the independent history checker agrees: every transition an edge, versions contiguous, all at rest.
      const report = await checkHistory(t.db.sql, { atRest: true });
      expect(report.violations, formatReport(report)).toEqual([]);
    }
    const deadlocks = await deadlockCount();
    console.log(
      `storm: ${[...statuses]
        .sort(([a], [b]) => a - b)
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}; deadlocks detected (and retried) ${deadlocks - deadlocksBefore}`,
    );
    expect(statuses.get(202) ?? 0, 'the storm changed things').toBeGreaterThan(50);
    expect(purged, 'purge removed deleted resources while the storm ran').toBeGreaterThan(0);
  }, 300_000);
});
