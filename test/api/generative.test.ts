/**
 * The generative layer over every route: random and hostile requests
 * (test/helpers/fuzz.ts) against the real app on a real database, and for
 * every answer:
 *
 * - never a 5xx;
 * - a status the README documents (the error registry's, or a success);
 * - an error body in Cinder's fault shape `{"<fault>": {"code", "message"}}`
 *   with the fault named after the status and the status in `code`;
 * - a refused request changed nothing: the state rows, the resources and
 *   the history are the same before and after it.
 *
 * Seeded: the seed is printed first and on a failure fast-check prints it
 * with the shrunk counterexample; `FUZZ_SEED=<n>` replays a run. The size
 * here fits `npm test`; `npm run test:fuzz` runs it long (FUZZ_RUNS).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PosixBackupStore } from '../../src/backup/posix.ts';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { ERRORS, faultName } from '../../src/errors.ts';
import { availableVolume, PROJECT, useApp, waitStatus } from '../helpers/app.ts';
import { requests, type FuzzRequest, type Targets } from '../helpers/fuzz.ts';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1500);
const SEED = process.env.FUZZ_SEED !== undefined ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;

/** FUZZ_SURVEY=1: record every violation instead of stopping at the first, and print them grouped. */
const SURVEY = process.env.FUZZ_SURVEY === '1';
const surveyed = new Map<string, { n: number; example: string }>();
function survey(r: FuzzRequest, status: number, body: string, changed: boolean) {
  let shape = true;
  try {
    const b = JSON.parse(body) as Record<string, { code?: unknown }>;
    shape = Object.keys(b).length === 1 && b[faultName(status)]?.code === status;
  } catch {
    shape = false;
  }
  if (r.method === 'HEAD') shape = true; // HEAD answers carry no body
  const problems = [
    status >= 500 && '5xx',
    !DOCUMENTED.has(status) && 'undocumented',
    status >= 400 && !shape && 'shape',
    status >= 400 && changed && 'changed',
  ].filter(Boolean);
  if (problems.length === 0) return;
  const key = `${problems.join('+')} ${status} ${r.route}`;
  const seen = surveyed.get(key) ?? {
    n: 0,
    example: `${r.method} ${r.url.slice(0, 200)} ${JSON.stringify(r.headers)} ${(r.body ?? '').slice(0, 200)} → ${body.slice(0, 200)}`,
  };
  seen.n++;
  surveyed.set(key, seen);
}

const DOCUMENTED = new Set<number>([200, 202, 204, 300, ...Object.values(ERRORS).map((e) => e.status)]);

describe('every route, any input', () => {
  const t = useApp({ backupStore: new PosixBackupStore({ root: mkdtempSync(join(tmpdir(), 'volstate-fuzz-backups-')) }) });

  /** Everything a request could change, as one string. */
  async function fingerprint(): Promise<string> {
    const [row] = await t.db.sql<{ f: string }[]>`
      SELECT concat_ws('|',
        (SELECT md5(coalesce(string_agg(s::text, ',' ORDER BY s.resource_type, s.resource_id), '')) FROM resource_states s),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.id), '')) FROM volumes v),
        (SELECT md5(coalesce(string_agg(n::text, ',' ORDER BY n.id), '')) FROM snapshots n),
        (SELECT md5(coalesce(string_agg(a::text, ',' ORDER BY a.id), '')) FROM attachments a),
        (SELECT md5(coalesce(string_agg(b::text, ',' ORDER BY b.id), '')) FROM backups b),
        (SELECT count(*) FROM state_transitions),
        (SELECT count(*) FROM leases),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.host, v."binary"), '')) FROM services v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.id), '')) FROM volume_types v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.volume_type_id, v.project_id), '')) FROM volume_type_access v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.id), '')) FROM qos_specs v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.project_id, v.resource), '')) FROM quota_limits v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.class_name, v.resource), '')) FROM quota_class_limits v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.project_id, v.resource, v.slot), '')) FROM quota_usages v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.id), '')) FROM transfers v),
        (SELECT md5(coalesce(string_agg(v::text, ',' ORDER BY v.id), '')) FROM messages v)) AS f`;
    return row!.f;
  }

  async function send(r: FuzzRequest) {
    const res = await t.app.inject({
      method: r.method as 'GET',
      url: r.url,
      headers: r.headers,
      ...(r.body === undefined ? {} : { payload: r.body }),
    });
    return res;
  }

  it(`answers ${RUNS} generated requests with no 5xx, in the fault shape, changing nothing when refused (seed ${SEED})`, async () => {
    // Live targets: plain, multiattach, one with a snapshot, one attached.
    const volumes = [await availableVolume(t), await availableVolume(t, 1, { multiattach: true }), await availableVolume(t, 2)];
    const snap = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: volumes[2] } });
    expect(snap.status).toBe(202);
    await waitStatus(t, 'snapshots', snap.body.snapshot.id, 'available');
    const backup = await t.request('POST', '/v3/backups', { backup: { volume_id: volumes[0] } });
    expect(backup.status).toBe(202);
    await waitStatus(t, 'backups', backup.body.backup.id, 'available');
    // A volume on offer, and a user message (a type no backend satisfies).
    const offered = await availableVolume(t);
    const transfer = await t.request('POST', '/v3/volume-transfers', { transfer: { volume_id: offered } });
    expect(transfer.status).toBe(202);
    const nowhere = (
      await t.request('POST', '/v3/types', { volume_type: { name: 'fuzz-nowhere', extra_specs: { storage_protocol: 'none' } } })
    ).body.volume_type.id;
    const failed = (await t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: nowhere } })).body.volume.id;
    await waitStatus(t, 'volumes', failed, 'error');
    const message = (await t.request('GET', '/v3/messages')).body.messages[0].id;
    const att = await t.request('POST', '/v3/attachments', {
      attachment: { volume_uuid: volumes[1], instance_uuid: '11111111-2222-3333-4444-555555555555', connector: { host: 'h' } },
    });
    expect(att.status).toBe(200);
    // No background changes from here on: a change seen is the request's.
    await t.worker!.stop();
    const types = [(await t.request('GET', '/v3/types/default')).body.volume_type.id];
    for (const [name, pub] of [
      ['fuzz-public', true],
      ['fuzz-private', false],
    ] as const) {
      types.push(
        (await t.request('POST', '/v3/types', { volume_type: { name, 'os-volume-type-access:is_public': pub, extra_specs: { a: '1' } } }))
          .body.volume_type.id,
      );
    }
    const qos = (await t.request('POST', '/v3/qos-specs', { qos_specs: { name: 'fuzz-qos', read_iops_sec: '100' } })).body.qos_specs.id;
    expect((await t.request('GET', `/v3/qos-specs/${qos}/associate?vol_type_id=${types[1]}`)).status).toBe(202);
    const targets: Targets = {
      volumes,
      snapshots: [snap.body.snapshot.id],
      attachments: [att.body.attachment.id],
      backups: [backup.body.backup.id],
      types,
      qos: [qos],
      transfers: [transfer.body.transfer.id],
      messages: [message],
      project: PROJECT,
    };

    console.log(`generative API test: ${RUNS} runs, seed ${SEED} (replay with FUZZ_SEED=${SEED})`);
    const seen = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(requests(targets), async (r) => {
        const before = await fingerprint();
        const res = await send(r);
        seen.set(res.statusCode, (seen.get(res.statusCode) ?? 0) + 1);
        const what = `${r.method} ${r.url.slice(0, 300)} (${r.route}) → ${res.statusCode} ${res.body.slice(0, 500)}`;
        if (SURVEY) return void survey(r, res.statusCode, res.body, (await fingerprint()) !== before);
        expect(res.statusCode, what).toBeLessThan(500);
        expect(DOCUMENTED.has(res.statusCode), `undocumented status: ${what}`).toBe(true);
        if (res.statusCode >= 400 && r.method !== 'HEAD') {
          let body: unknown;
          expect(() => (body = JSON.parse(res.body)), `not JSON: ${what}`).not.toThrow();
          const fault = faultName(res.statusCode);
          expect(Object.keys(body as object), `fault shape: ${what}`).toEqual([fault]);
          const inner = (body as Record<string, { code: unknown; message: unknown }>)[fault]!;
          expect(inner.code, `fault code: ${what}`).toBe(res.statusCode);
          expect(typeof inner.message === 'string' && inner.message.length > 0, `fault message: ${what}`).toBe(true);
        }
        if (res.statusCode >= 400) expect(await fingerprint(), `a refused request changed something: ${what}`).toBe(before);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: false, verbose: 1 },
    );
    if (SURVEY) for (const [k, v] of surveyed) console.log(`${k} ×${v.n}\n    ${v.example}`);
    console.log(
      `generative API test: statuses ${[...seen]
        .sort(([a], [b]) => a - b)
        .map(([s, n]) => `${s}×${n}`)
        .join(' ')}`,
    );
  }, 600_000);
});
