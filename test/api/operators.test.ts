/**
 * What operators read: the diagrams served by the API, and the Prometheus
 * metrics, scraped and read with a real Prometheus text-format parser.
 */
import parsePrometheusTextFormat, { type Family } from 'parse-prometheus-text-format';
import { describe, expect, it } from 'vitest';
import { faultName } from '../../src/errors.ts';
import { availableVolume, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp();

describe('diagrams', () => {
  it('are served: an index, and each machine as SVG, Mermaid and Graphviz', async () => {
    const index = await t.app.inject({ url: '/diagrams' });
    expect(index.statusCode).toBe(200);
    expect(index.headers['content-type']).toMatch(/^text\/html/);
    for (const m of ['volume', 'snapshot', 'attachment']) expect(index.body).toContain(`href="diagrams/${m}.svg"`);
    const svg = await t.app.inject({ url: '/diagrams/volume.svg' });
    expect(svg.headers['content-type']).toBe('image/svg+xml');
    expect(svg.body).toMatch(/<svg[\s\S]*extending/);
    const mmd = await t.app.inject({ url: '/diagrams/attachment.mmd' });
    expect(mmd.body).toMatch(/reserved --> attached/);
    expect((await t.app.inject({ url: '/diagrams/recovery.md' })).statusCode).toBe(200);
  });

  it('serve nothing else of the directory, whatever the path', async () => {
    for (const url of ['/diagrams/bogus.svg', '/diagrams/..%2Fpackage.json', '/diagrams/volume.png']) {
      const res = await t.app.inject({ url });
      expect(res.statusCode, url).toBe(404);
      expect(Object.keys(JSON.parse(res.body) as object)).toEqual([faultName(404)]);
    }
  });
});

describe('GET /metrics', () => {
  it('is Prometheus text a real parser reads, with transitions, refusals, CAS latency, resources per state, worker and HTTP figures', async () => {
    const v = await availableVolume(t);
    expect((await t.request('POST', `/v3/volumes/${v}/action`, { 'os-extend': { new_size: 1 } })).status).toBe(400);
    await t.worker!.idle();
    const res = await t.app.inject({ url: '/metrics' });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toMatch(/^text\/plain; version=0\.0\.4/);
    const families = new Map<string, Family>(parsePrometheusTextFormat(res.body).map((f) => [f.name, f]));
    const value = (name: string, labels: Record<string, string> = {}) =>
      (families.get(name)?.metrics ?? [])
        .filter((m) => Object.entries(labels).every(([k, v]) => m.labels?.[k] === v))
        .reduce((sum, m) => sum + Number(m.value ?? m.count ?? 0), 0);
    expect(families.get('volstate_transitions_total')?.type).toBe('COUNTER');
    expect(value('volstate_transitions_total', { machine: 'volume', event: 'BACKEND_CREATED' })).toBeGreaterThanOrEqual(1);
    expect(value('volstate_refusals_total', { machine: 'volume', event: 'EXTEND', state: 'available', reason: 'invalid' })).toBe(1);
    expect(families.get('volstate_cas_duration_seconds')?.type).toBe('HISTOGRAM');
    // This parser folds a labelled histogram's series into one set of buckets, without labels:
    // the family and its +Inf bucket from the parser, the per-label count from the text itself.
    expect(Number(families.get('volstate_cas_duration_seconds')?.metrics[0]?.buckets?.['+Inf'])).toBeGreaterThanOrEqual(1);
    expect(res.body).toMatch(/^volstate_cas_duration_seconds_count\{machine="volume",event="EXTEND"\} 1$/m);
    expect(value('volstate_resources', { machine: 'volume', state: 'available' })).toBeGreaterThanOrEqual(1);
    expect(value('volstate_worker_steps_completed_total')).toBeGreaterThanOrEqual(1);
    expect(families.has('volstate_worker_heartbeat_age_seconds')).toBe(true);
    expect(value('volstate_waiters')).toBe(0);
    expect(value('volstate_http_requests_total', { route: '/v3/volumes', method: 'POST', status: '202' })).toBeGreaterThanOrEqual(1);
    expect(value('volstate_http_requests_total', { route: '/v3/volumes/:id/action', status: '400' })).toBe(1);
    expect(families.has('volstate_process_cpu_seconds_total')).toBe(true);
  });
});

describe('the history of a resource', () => {
  it('stays readable after the resource is deleted; an id that never existed is 404', async () => {
    const v = await availableVolume(t);
    expect((await t.request('DELETE', `/v3/volumes/${v}`)).status).toBe(202);
    await waitStatus(t, 'volumes', v, 'gone');
    const res = await t.request('GET', `/v3/volumes/${v}/transitions`);
    expect(res.status).toBe(200);
    expect(res.body.transitions.at(-1)).toMatchObject({ to: 'deleted' });
    expect(res.body.transitions[0]).toMatchObject({ from: null, event: 'CREATE', version: 1 });
    expect((await t.request('GET', `/v3/volumes/${crypto.randomUUID()}/transitions`)).status).toBe(404);
  });
});

describe('GET /ui/state', () => {
  it('lists a row stuck in a transient state far longer than usual, and not one that just got there', async () => {
    const v = await availableVolume(t, 1, { multiattach: true });
    const connect = async () =>
      (
        await t.request('POST', '/v3/attachments', {
          attachment: { volume_uuid: v, instance_uuid: crypto.randomUUID(), connector: { host: 'h' } },
        })
      ).body.attachment.id as string;
    const [old, fresh] = [await connect(), await connect()];
    await t.db.sql`UPDATE resource_states SET updated_at = now() - interval '1 hour' WHERE resource_id = ${old}`;
    const res = await t.app.inject({ url: '/ui/state' });
    expect(res.statusCode).toBe(200);
    const state = JSON.parse(res.body) as {
      counts: Record<string, Record<string, number>>;
      stuck: { resource_id: string; state: string }[];
      workers: unknown[];
      last_event_id: number;
    };
    // Where the page's event stream starts: the newest transition the counts include.
    const [newest] = await t.db.sql<{ id: number }[]>`SELECT max(id)::float8 AS id FROM state_transitions`;
    expect(state.last_event_id).toBeGreaterThan(0);
    expect(state.last_event_id).toBeLessThanOrEqual(newest!.id);
    expect(state.stuck.map((r) => r.resource_id)).toContain(old);
    expect(state.stuck.map((r) => r.resource_id)).not.toContain(fresh);
    expect(state.counts.attachment?.attaching).toBeGreaterThanOrEqual(2);
    expect(state.workers.length).toBeGreaterThanOrEqual(1);
  });
});
