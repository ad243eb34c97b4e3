/**
 * `npm run bench:notify`: notifications off the request path, measured.
 *
 * One `volstate serve` on the embedded PostgreSQL (fake driver), sending
 * Cinder's notifications (durable) to a RabbitMQ on loopback; a consumer
 * (the harness's) acknowledges each as it arrives. Clients run volume
 * lifecycles (create, poll until available, extend, poll, delete, poll until
 * gone) in three phases:
 *
 *   1. the broker up (BENCH_SECONDS, default 20);
 *   2. the broker down (BENCH_OUTAGE_SECONDS, default 60): the API must not
 *      notice — its lifecycles/s and create → available p50 are printed
 *      beside phase 1's, as a ratio;
 *   3. the broker back, clients stopped: how long the backlog the outage
 *      left takes to arrive, and at what rate;
 *   4. the broker up, the load again (BENCH_SECONDS): phase 2 is compared
 *      with the mean of 1 and 4, so a drift over the run (the machine, the
 *      growing database) is not taken for the outage's cost.
 *
 * Printed: the lifecycles per second and create → available p50 (from the
 * history, server side) of phases 1 and 2 and their ratios; notifications
 * per second delivered in phase 1 and their lag (transition to arrival)
 * p50/p99; the backlog and its drain rate; and whether every notification
 * the history made due arrived (src/check/notifications.ts).
 */
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureDatabase, sqlClient } from '../db/connect.ts';
import { freePort, startEmbedded } from '../db/servers/embedded.ts';
import { startRabbit } from '../db/servers/rabbitmq.ts';
import { relayLag } from '../db/notify.ts';
import { checkNotifications } from '../src/check/notifications.ts';
import { NotificationConsumer } from '../src/harness/consumer.ts';
import { transportUrls } from '../src/notify/config.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 20);
const OUTAGE = Number(process.env.BENCH_OUTAGE_SECONDS ?? 60);
const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 8);
const POLL_MS = 5;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function lifecycles(url: string, project: string, until: () => boolean): Promise<number> {
  const headers = { 'x-auth-token': `admin:${project}`, 'openstack-api-version': 'volume 3.60', 'content-type': 'application/json' };
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${url}/v3${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    const text = await r.text();
    return { status: r.status, body: (text ? JSON.parse(text) : {}) as { volume?: { id: string; status: string; size: number } } };
  };
  const poll = async (id: string, done: (s: number, v?: { status: string; size: number }) => boolean) => {
    for (;;) {
      const r = await api('GET', `/volumes/${id}`);
      if (done(r.status, r.body.volume)) return;
      await sleep(POLL_MS);
    }
  };
  let n = 0;
  while (!until()) {
    const created = await api('POST', '/volumes', { volume: { size: 1 } });
    if (created.status !== 202) throw new Error(`create: ${created.status}`);
    const id = created.body.volume!.id;
    await poll(id, (_, v) => v?.status === 'available');
    if ((await api('POST', `/volumes/${id}/action`, { 'os-extend': { new_size: 2 } })).status !== 202) throw new Error('extend refused');
    await poll(id, (_, v) => v?.status === 'available' && v.size === 2);
    if ((await api('DELETE', `/volumes/${id}`)).status !== 202) throw new Error('delete refused');
    await poll(id, (s) => s === 404);
    n++;
  }
  return n;
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! : NaN;
};

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-bench-notify-'));
  chmodSync(dir, 0o755);
  const pg = await startEmbedded({ dir: join(dir, 'db'), fast: true });
  const rabbit = await startRabbit({ dir: join(dir, 'rabbit') });
  const consumer = new NotificationConsumer(transportUrls(rabbit.url)[0]!, { exchange: 'cinder', topic: 'notifications' });
  let server: ReturnType<typeof spawn> | undefined;
  try {
    await ensureDatabase(pg.adminUrl, 'volstate');
    const databaseUrl = pg.urlFor('volstate');
    await consumer.start();
    const port = await freePort();
    server = spawn(process.execPath, ['--import', 'tsx', 'src/cli.ts', 'serve', '--port', String(port)], {
      env: {
        ...process.env,
        DATABASE_URL: databaseUrl,
        VOLSTATE_DATA_DIR: join(dir, 'node'),
        VOLSTATE_DRIVER: 'fake',
        VOLSTATE_NOTIFY_URL: rabbit.url,
        VOLSTATE_NOTIFY_DURABLE: 'true',
        LOG_LEVEL: 'error',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const proc = server;
    process.once('exit', () => proc.kill('SIGKILL'));
    let err = '';
    await new Promise<void>((resolve, reject) => {
      proc.stderr!.on('data', (b: Buffer) => {
        err += b.toString();
        if (/serving the Cinder v3 API/.test(err) && /worker \S+ running/.test(err)) resolve();
      });
      proc.on('exit', (code) => reject(new Error(`the server exited (${code}):\n${err}`)));
    });
    const url = `http://127.0.0.1:${port}`;
    const sql = sqlClient(databaseUrl, { max: 2, onnotice: () => {} });

    const phase = async (seconds: number) => {
      const start = Date.now();
      const end = start + seconds * 1000;
      const done = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => lifecycles(url, `p${i}`, () => Date.now() >= end)));
      const stop = Date.now();
      const [row] = await sql<{ p50: number }[]>`
        WITH c AS (SELECT resource_id, at FROM state_transitions WHERE resource_type = 'volume' AND from_state IS NULL
                   AND at >= ${new Date(start)} AND at < ${new Date(end)})
        SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM
          (SELECT min(a.at) FROM state_transitions a WHERE a.resource_type = 'volume' AND a.resource_id = c.resource_id
             AND a.to_state = 'available') - c.at)) * 1000 AS p50 FROM c`;
      return { perSecond: done.reduce((a, b) => a + b, 0) / ((stop - start) / 1000), p50: Number(row!.p50), start, stop };
    };

    const lag = async () => (await relayLag(sql))?.lag ?? NaN;
    const caughtUp = async (what: string) => {
      for (const until = Date.now() + 300_000; ;) {
        if ((await lag()) === 0 && Date.now() - consumer.lastAt > 1000) return;
        if (Date.now() > until) throw new Error(`${what}: the relay did not catch up in 300 s (lag ${await lag()})`);
        await sleep(100);
      }
    };

    await phase(2); // warm-up: pools and plans
    await caughtUp('warm-up');
    const up = await phase(SECONDS);
    await caughtUp('phase 1');
    const during = consumer.received.filter((r) => r.happenedAt! >= up.start && r.happenedAt! < up.stop);
    const lagMs = during.map((r) => r.receivedAt! - r.happenedAt!);

    await rabbit.down();
    const down = await phase(OUTAGE);
    const backlog = await lag();
    const before = consumer.received.length;
    await rabbit.up();
    const back = Date.now();
    await caughtUp('after the outage');
    const drained = consumer.received.length - before;
    const drainMs = consumer.lastAt - back;
    // The broker up again: the same load once more, so that a drift of the machine or of the growing
    // database over the run is seen as such, not taken for the outage's cost.
    const again = await phase(SECONDS);
    await caughtUp('phase 4');
    const check = await checkNotifications(sql, consumer.received);
    await sql.end();

    const f = (x: number, d = 1) => x.toFixed(d);
    console.log(`bench:notify — ${CLIENTS} clients, volume lifecycles, one node, fake driver, durable notifications on a local RabbitMQ`);
    console.log(`| phase | lifecycles/s | create → available p50 |`);
    console.log(`| --- | ---: | ---: |`);
    console.log(`| broker up (${SECONDS} s) | ${f(up.perSecond)} | ${f(up.p50)} ms |`);
    console.log(`| broker down (${OUTAGE} s) | ${f(down.perSecond)} | ${f(down.p50)} ms |`);
    console.log(`| broker back, after the drain (${SECONDS} s) | ${f(again.perSecond)} | ${f(again.p50)} ms |`);
    const upRate = (up.perSecond + again.perSecond) / 2;
    const upP50 = (up.p50 + again.p50) / 2;
    console.log(`| down ÷ up (the mean of before and after) | ${f(down.perSecond / upRate, 2)} × | ${f(down.p50 / upP50, 2)} × |`);
    console.log(
      `notifications with the broker up: ${during.length} in ${f((up.stop - up.start) / 1000)} s, ${f(during.length / ((up.stop - up.start) / 1000))}/s; ` +
        `lag from the transition to the consumer p50 ${f(pct(lagMs, 50))} ms, p99 ${f(pct(lagMs, 99))} ms`,
    );
    console.log(
      `the outage left ${backlog} transitions unconfirmed; once the broker was back, ${drained} notifications arrived in ${f(drainMs / 1000, 2)} s ` +
        `(${f(drained / (drainMs / 1000), 0)}/s)`,
    );
    console.log(
      `every notification due: ${check.expected} due from the history, ${check.received} received (${check.duplicates} repeated), ` +
        `${check.violations.length} violations${
          check.violations.length
            ? `: ${check.violations
                .slice(0, 3)
                .map((v) => v.detail)
                .join('; ')}`
            : ''
        }`,
    );
    if (check.violations.length) process.exitCode = 1;
  } finally {
    server?.kill('SIGKILL');
    await consumer.stop();
    await rabbit.stop();
    await pg.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
