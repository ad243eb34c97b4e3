/**
 * Cinder's notifications on a real RabbitMQ, received by oslo.messaging's
 * own notification listener (the library Ceilometer consumes with): every
 * transition of a volume's, a snapshot's and an attachment's life sends
 * the events machines/notifications.ts names, Cinder-shaped, in order per
 * resource; and a broker that is down while the API works delays them and
 * loses none.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEADERS, useApp } from '../helpers/app.ts';
import { RABBIT_START_MS, startOsloListener, startRabbit, type Listener, type Rabbit, type Received } from '../helpers/rabbit.ts';
import { until } from '../helpers/wait.ts';
import { transportUrls } from '../../src/notify/config.ts';
import { auditUsage } from '../../src/notify/audit.ts';
import { NotificationRelay } from '../../src/notify/relay.ts';
import { notificationsOf, stableUuid } from '../../src/notify/message.ts';
import type { StateTransitionRow } from '../../db/schema.ts';

let rabbit: Rabbit;
let listener: Listener;
beforeAll(async () => {
  rabbit = await startRabbit();
  listener = await startOsloListener(rabbit.url);
}, RABBIT_START_MS + 60_000);
afterAll(async () => {
  await listener?.stop();
  await rabbit?.stop();
});

/** Where the app's relay, and each relay or audit a test makes, publishes: the broker above, oslo's defaults. */
const notifyConfig = () => ({
  urls: transportUrls(rabbit.url),
  exchange: 'cinder',
  topics: ['notifications'],
  durable: false,
  host: 'volstate-test',
});

const t = useApp({ notify: notifyConfig });

const SERVER = '7e3a4f7d-6a7b-4c1e-9d0a-5d9e8f1a2b3c';
const CONNECTOR = { host: 'compute-1', initiator: 'iqn.1993-08.org.debian:01:c0ffee', ip: '192.0.2.10', platform: 'x86_64' };

async function settled(id: string, status: string, kind = 'volumes'): Promise<void> {
  await until(
    async () => (await t.request('GET', `/v3/${kind}/${id}`)).body[kind.slice(0, -1)]?.status === status,
    20_000,
    `${kind} ${id} ${status}`,
  );
}

/** What the history says must have been sent: each transition's event types, with their stable ids, in history order. */
async function expected(): Promise<{ message_id: string; event_type: string; resource: string; priority: string }[]> {
  const rows = await t.db.sql<StateTransitionRow[]>`
    SELECT id::float8 AS id, resource_type, resource_id, from_state, event, to_state, version, actor, request_id, at, size
    FROM state_transitions ORDER BY id`;
  return rows.flatMap((r) =>
    notificationsOf(r).flatMap(({ types, priority }) =>
      types.map((type) => ({
        message_id: stableUuid(`${r.resource_type}:${r.resource_id}:${r.version}:${type}`),
        event_type: type,
        resource: `${r.resource_type}:${r.resource_id}`,
        priority,
      })),
    ),
  );
}

/** Wait until the listener has every expected notification (by message id), then check nothing else came and the order. */
async function allDelivered(): Promise<Received[]> {
  const want = await expected();
  const ids = new Set(want.map((w) => w.message_id));
  await until(() => want.every((w) => listener.received.some((r) => r.message_id === w.message_id)), 30_000, 'every notification');
  const got = listener.received.filter((r) => ids.has(r.message_id));
  // First copies only: at-least-once delivery may repeat one (same id), never reorder the first copies.
  const seen = new Set<string>();
  const first = got.filter((r) => !seen.has(r.message_id) && seen.add(r.message_id));
  expect(first.map((r) => r.message_id)).toEqual(want.map((w) => w.message_id));
  for (const w of want)
    expect(first.find((r) => r.message_id === w.message_id)).toMatchObject({ event_type: w.event_type, priority: w.priority });
  return first;
}

describe('notifications on RabbitMQ', () => {
  it("a volume's life — create, extend, snapshot, attach, detach, delete, and a failed create — reaches oslo.messaging's listener as Cinder's events", async () => {
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1, name: 'billed', metadata: { team: 'storage' } } });
    expect(created.status).toBe(202);
    const id = created.body.volume.id as string;
    await settled(id, 'available');
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 3 } })).status).toBe(202);
    await settled(id, 'available');

    const snap = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: id, name: 'nightly' } });
    expect(snap.status).toBe(202);
    const snapId = snap.body.snapshot.id as string;
    await settled(snapId, 'available', 'snapshots');
    expect((await t.request('DELETE', `/v3/snapshots/${snapId}`)).status).toBe(202);
    await until(async () => (await t.request('GET', `/v3/snapshots/${snapId}`)).status === 404, 20_000, 'snapshot gone');

    const att = await t.request('POST', '/v3/attachments', {
      attachment: { volume_uuid: id, instance_uuid: SERVER, connector: CONNECTOR },
    });
    expect(att.status).toBe(200);
    const attId = att.body.attachment.id as string;
    expect((await t.request('POST', `/v3/attachments/${attId}/action`, { 'os-complete': null })).status).toBe(204);
    expect((await t.request('DELETE', `/v3/attachments/${attId}`)).status).toBe(200);
    await settled(id, 'available');

    expect((await t.request('DELETE', `/v3/volumes/${id}`)).status).toBe(202);
    await until(async () => (await t.request('GET', `/v3/volumes/${id}`)).status === 404, 20_000, 'volume gone');

    // A create the backend fails: volume.create.error, at ERROR priority, on notifications.error.
    t.faults.failures.create = 1;
    const failed = await t.request('POST', '/v3/volumes', { volume: { size: 2 } });
    const failedId = failed.body.volume.id as string;
    await settled(failedId, 'error');
    t.faults.failures.create = 0;

    const got = await allDelivered();
    const of = (type: string, volumeId = id) => got.filter((r) => r.event_type === type && (r.payload.volume_id ?? '') === volumeId);
    expect(got.filter((r) => r.payload.volume_id === id).map((r) => r.event_type)).toEqual([
      'volume.create.start',
      'volume.create.end',
      'volume.resize.start',
      'volume.resize.end',
      'snapshot.create.start',
      'snapshot.create.end',
      'snapshot.delete.start',
      'snapshot.delete.end',
      'volume.attach.start',
      'volume.attach.end',
      'volume.detach.start',
      'volume.detach.end',
      'volume.delete.start',
      'volume.delete.end',
    ]);
    const [createEnd] = of('volume.create.end');
    expect(createEnd).toMatchObject({
      publisher_id: 'volume.volstate-test',
      priority: 'INFO',
      payload: {
        tenant_id: HEADERS['x-auth-token'].split(':')[1],
        volume_id: id,
        display_name: 'billed',
        size: 1,
        status: 'available',
        availability_zone: 'nova',
        metadata: { team: 'storage' },
      },
    });
    expect(createEnd!.payload.created_at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00$/);
    expect(createEnd!.payload.launched_at).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(createEnd!.timestamp).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}$/);
    // The size each step left, not the size when sent: the extend's start still says 1, its end 3.
    expect(of('volume.resize.start')[0]!.payload.size).toBe(1);
    expect(of('volume.resize.end')[0]!.payload).toMatchObject({ size: 3, status: 'available' });
    expect(of('volume.delete.end')[0]!.payload).toMatchObject({ status: 'deleted', size: 3 });
    expect(of('volume.attach.end')[0]!.payload).toMatchObject({ status: 'in-use', instance_uuid: SERVER, attached_host: 'compute-1' });
    expect(got.find((r) => r.event_type === 'snapshot.create.end')!).toMatchObject({
      publisher_id: 'snapshot.volstate-test',
      payload: { snapshot_id: snapId, volume_id: id, display_name: 'nightly', status: 'available', volume_size: 3 },
    });
    // The client's request id travels in oslo's context, for the API's own transitions.
    expect(of('volume.create.start')[0]!.request_id).toBe(created.headers['x-openstack-request-id']);
    expect(of('volume.create.error', failedId)).toMatchObject([{ priority: 'ERROR', payload: { status: 'error', size: 2 } }]);
  });

  it(
    'a broker down for a while: the API answers as before, the lag grows, and when it is back every notification arrives, in order',
    async () => {
      const metric = async (name: string) => {
        const text = (await t.app.inject({ method: 'GET', url: '/metrics' })).body;
        return Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
      };
      await allDelivered();
      await until(async () => (await metric('volstate_notify_lag_transitions')) === 0, 20_000, 'the relay caught up');
      expect(await metric('volstate_notify_leading')).toBe(1);
      const errorsBefore = await metric('volstate_notify_errors_total');

      await rabbit.down();
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const created = await t.request('POST', '/v3/volumes', { volume: { size: 1, name: `during-outage-${i}` } });
        expect(created.status).toBe(202);
        ids.push(created.body.volume.id as string);
      }
      for (const id of ids) await settled(id, 'available');
      expect((await t.request('DELETE', `/v3/volumes/${ids[0]}`)).status).toBe(202);
      await until(async () => (await t.request('GET', `/v3/volumes/${ids[0]}`)).status === 404, 20_000, 'volume gone');
      // The node stays ready: the broker is not on the request path.
      expect((await t.app.inject({ method: 'GET', url: '/readyz' })).statusCode).toBe(200);
      // Nothing could be confirmed: the transitions wait in the history, and the relay says it cannot reach the broker.
      expect(await metric('volstate_notify_lag_transitions')).toBeGreaterThanOrEqual(5 * 4);
      await until(async () => (await metric('volstate_notify_errors_total')) > errorsBefore, 20_000, 'a failed round counted');

      await rabbit.up();
      const got = await allDelivered();
      expect(got.filter((r) => ids.includes(r.payload.volume_id as string) && r.event_type === 'volume.create.end')).toHaveLength(5);
      await until(async () => (await metric('volstate_notify_lag_transitions')) === 0, 30_000, 'the backlog drained');
    },
    RABBIT_START_MS + 60_000,
  );

  it('the usage audit sends volume.exists and snapshot.exists for what existed in the period, again under the same ids', async () => {
    const kept = await t.request('POST', '/v3/volumes', { volume: { size: 4, name: 'kept' } });
    const keptId = kept.body.volume.id as string;
    await settled(keptId, 'available');
    const snap = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: keptId, name: 'audited' } });
    const snapId = snap.body.snapshot.id as string;
    await settled(snapId, 'available', 'snapshots');
    const [{ now }] = [...(await t.db.sql<{ now: Date }[]>`SELECT now() AS now`)] as [{ now: Date }];
    const period = { begin: new Date(now.getTime() - 3_600_000), end: new Date(now.getTime() + 1000) };
    const config = notifyConfig();
    const first = await auditUsage(t.db.sql, config, period);
    // Every volume the earlier tests made existed in the hour: the deleted ones too (deleted after it began).
    const [{ n }] = [...(await t.db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM volumes`)] as [{ n: number }];
    expect(first.volumes).toBe(n);
    expect(first.snapshots).toBeGreaterThanOrEqual(2);
    const exists = () => listener.received.filter((r) => r.event_type === 'volume.exists' && r.payload.volume_id === keptId);
    await until(() => exists().length === 1, 20_000, 'volume.exists');
    expect(exists()[0]).toMatchObject({
      publisher_id: 'volume.volstate-test',
      priority: 'INFO',
      payload: { volume_id: keptId, size: 4, status: 'available', display_name: 'kept' },
    });
    expect(exists()[0]!.payload.audit_period_beginning).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    await until(
      () => listener.received.some((r) => r.event_type === 'snapshot.exists' && r.payload.snapshot_id === snapId),
      20_000,
      'snapshot.exists',
    );
    // The same period again: the same message ids (oslo's listener drops the repeats it still remembers).
    await auditUsage(t.db.sql, config, period);
    const ids = new Set(listener.received.filter((r) => r.event_type.endsWith('.exists')).map((r) => r.message_id));
    expect(ids.size).toBe(first.volumes + first.snapshots);
  });

  it("a relay that dies holding the lease: another node's relay takes over once it lapses, and nothing is missing", async () => {
    const config = notifyConfig();
    // The app's own relay steps aside (hands its lease over); two more, with a short lease, take turns.
    await t.worker!.relay!.stop();
    const a = new NotificationRelay({ sql: t.db.sql, config, holder: 'relay-a', leaseMs: 1000, pollMs: 50 });
    const b = new NotificationRelay({ sql: t.db.sql, config, holder: 'relay-b', leaseMs: 1000, pollMs: 50 });
    a.start();
    await until(() => a.leading, 20_000, 'relay a leads');
    b.start();
    const made = await t.request('POST', '/v3/volumes', { volume: { size: 1, name: 'before-the-death' } });
    await settled(made.body.volume.id as string, 'available');
    await allDelivered();
    expect(b.leading).toBe(false);
    await a.stop({ release: false }); // dies: its lease is left to lapse
    const after = await t.request('POST', '/v3/volumes', { volume: { size: 1, name: 'after-the-death' } });
    await settled(after.body.volume.id as string, 'available');
    await until(() => b.leading, 20_000, 'relay b takes over');
    const got = await allDelivered();
    expect(got.filter((r) => r.payload.volume_id === after.body.volume.id).map((r) => r.event_type)).toEqual([
      'volume.create.start',
      'volume.create.end',
    ]);
    await b.stop();
  });
});
