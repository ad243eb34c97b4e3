/**
 * A request whose database connection is lost mid-change answers the
 * truth (src/api/changes.ts): its success answer when the change committed
 * just before the connection went; when nothing committed, the change is
 * made again once the database answers (the session was ended by the
 * server), and a 5xx only when that did not succeed in the patience.
 *
 * The race, run many times: clients create, reset and extend volumes
 * while another session terminates the app's connections at random
 * moments (`pg_terminate_backend`, as a server restart or an operator
 * does). The rarer outcome — committed, and the connection lost before the
 * app read so — is also made on demand: the app reaches PostgreSQL through
 * a proxy that cuts a connection right after a COMMIT (test/helpers/cut-proxy.ts),
 * armed for the first few. Every answer is then checked against the
 * history, which records each change with its request id in the same
 * statement.
 */
import { Writable } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, sqlClient, type Sql } from '../../db/connect.ts';
import { build } from '../../src/app.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { HEADERS } from '../helpers/app.ts';
import { startCutProxy, type CutProxy } from '../helpers/cut-proxy.ts';
import { until } from '../helpers/wait.ts';

const APP_NAME = 'volstate-lost-connection';
let url: string;
let sql: Sql;
let killer: postgres.Sql;
let app: FastifyInstance;
let proxy: CutProxy;
const log: { msg: string; reqId?: string }[] = [];

beforeAll(async () => {
  url = await createTestDatabase();
  proxy = await startCutProxy(url);
  sql = connect(proxy.url, { max: 8, name: APP_NAME });
  killer = sqlClient(url, { max: 1, onnotice: () => {} });
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      log.push(JSON.parse(chunk.toString()) as { msg: string; reqId?: string });
      done();
    },
  });
  app = await build({
    sql,
    driver: new FakeDriver(),
    auth: { mode: 'noauth', defaultProject: 'admin' },
    logger: { level: 'warn', stream },
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await sql?.end({ timeout: 5 });
  await killer?.end();
  await proxy?.close();
});

interface Answer {
  what: string;
  status: number;
  requestId: string;
  body: Record<string, any>;
  ms: number;
}

async function request(method: string, path: string, body?: unknown): Promise<Answer> {
  const started = Date.now();
  const res = await app.inject({
    method: method as 'POST',
    url: path,
    headers: HEADERS,
    ...(body === undefined ? {} : { payload: JSON.stringify(body) }),
  });
  return {
    what: `${method} ${path} ${JSON.stringify(body ?? null)}`,
    status: res.statusCode,
    requestId: res.headers['x-openstack-request-id'] as string,
    body: res.body ? (JSON.parse(res.body) as Record<string, any>) : {},
    ms: Date.now() - started,
  };
}

describe('a connection lost mid-change', () => {
  it(
    'answers 5xx only for what changed nothing, success for what committed, and makes again what did not',
    { timeout: 240_000 },
    async () => {
      const answers: Answer[] = [];
      let stop = false;
      // Terminates the app's connections, again and again, at random moments.
      const kills = (async () => {
        let n = 0;
        let answered = 0;
        while (!stop) {
          // At most one termination per answered request: paced by the app's progress, not by the
          // clock, so a slowed app is not starved into answering nothing (on a loaded machine a
          // fixed pace ended ten requests in 30 s, each tried again and again).
          await until(() => stop || answers.length > answered, 150_000, 'an answer between terminations');
          answered = answers.length;
          // A pause measured by the server: the test's event loop is busy with the clients.
          await killer`SELECT pg_sleep(random() * 0.02)`;
          // One of the app's connections, as a backend crash or an operator's kill would.
          await killer`
          SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE application_name = ${APP_NAME} AND datname = current_database() ORDER BY random() LIMIT 1`;
          n++;
        }
        return n;
      })();
      // At least 4 s, and on until both outcomes of a lost connection have happened (a change made
      // again after nothing committed, by the random terminations; one committed just before the
      // loss, by the proxy's cuts). At most 150 s.
      const seen = (prefix: string) => log.some((l) => l.msg.startsWith(prefix));
      const bothSeen = () =>
        seen('connection lost mid-change; nothing was changed; trying again') && seen('connection lost after the change committed');
      const end = Date.now() + 4000;
      const cap = Date.now() + 150_000;
      const clients = Array.from({ length: 6 }, async () => {
        while (Date.now() < end || (!bothSeen() && Date.now() < cap)) {
          if (proxy.cuts < 3) proxy.arm();
          const created = await request('POST', '/v3/volumes', { volume: { size: 1 } });
          answers.push(created);
          if (created.status !== 202) continue;
          const id = created.body.volume.id as string;
          // Without a worker the volume stays creating: an admin reset makes it available, then it is extended.
          answers.push(await request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status: 'available' } }));
          answers.push(await request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }));
        }
      });
      await Promise.all(clients);
      stop = true;
      const killed = await kills;

      const history = await killer<{ request_id: string; resource_id: string; event: string }[]>`
      SELECT request_id, resource_id, event FROM state_transitions WHERE request_id IS NOT NULL`;
      const byRequest = new Map<string, { resource_id: string; event: string }[]>();
      for (const h of history) byRequest.set(h.request_id, [...(byRequest.get(h.request_id) ?? []), h]);

      const wrong: string[] = [];
      for (const a of answers) {
        const changes = byRequest.get(a.requestId) ?? [];
        if (a.status >= 500 && changes.length > 0)
          wrong.push(`${a.what} → ${a.status} ${JSON.stringify(a.body)}, but it changed ${changes.map((c) => c.event).join(', ')}`);
        if (a.status === 202 && changes.length === 0) wrong.push(`${a.what} → 202, but nothing changed`);
        if (a.status === 202 && a.what.startsWith('POST /v3/volumes ') && changes[0]?.resource_id !== a.body.volume.id) {
          wrong.push(`${a.what} → 202 naming ${a.body.volume.id as string}, but it created ${changes[0]?.resource_id}`);
        }
        // The only refusal possible: extending a volume whose reset was answered 5xx (nothing changed, still creating).
        if (a.status !== 202 && a.status < 500 && !(a.status === 409 && a.what.includes('os-extend')))
          wrong.push(`${a.what} → ${a.status} ${JSON.stringify(a.body)}`);
      }
      // The app's own account of the wrong ones, to see why.
      if (wrong.length)
        console.log(
          JSON.stringify(
            log.filter((l) => answers.some((a) => a.requestId === l.reqId && a.status >= 500 && byRequest.has(a.requestId))),
            null,
            1,
          ),
        );
      expect(wrong).toEqual([]);

      // Every volume that exists was announced to its client: none made by a request answered 5xx.
      const made = new Set(answers.filter((a) => a.status === 202 && a.body.volume).map((a) => a.body.volume.id as string));
      const volumes = await killer<{ id: string }[]>`SELECT id FROM volumes`;
      expect(volumes.filter((v) => !made.has(v.id))).toEqual([]);

      // Both outcomes of a lost connection happened, or the race was not run.
      const failed = answers.filter((a) => a.status >= 500).length;
      const doneAfterLoss = log.filter((l) => l.msg.startsWith('connection lost after the change committed')).length;
      const triedAgain = log.filter((l) => l.msg.startsWith('connection lost mid-change; nothing was changed; trying again'));
      const slowest = answers.reduce((a, b) => (b.ms > a.ms ? b : a));
      console.log(
        `lost connections: ${answers.length} requests, ${killed} terminations; ${triedAgain.length} made again after nothing changed, ` +
          `${failed} answered 503; ${doneAfterLoss} committed before the loss and answered as done (${proxy.cuts} cut after a COMMIT); slowest answer ${slowest.ms} ms`,
      );
      expect(triedAgain.length).toBeGreaterThan(0);
      expect(doneAfterLoss).toBeGreaterThan(0);
      // What was made again was made once, and answered as made: each such request's answer is a success, or a refusal that changed nothing.
      const again = new Set(triedAgain.map((l) => l.reqId));
      const madeAgain = answers.filter((a) => again.has(a.requestId));
      expect(madeAgain.length).toBeGreaterThan(0);
      for (const a of madeAgain)
        if (a.status === 202 && a.what.startsWith('POST /v3/volumes '))
          expect((byRequest.get(a.requestId) ?? []).filter((c) => c.event === 'CREATE')).toHaveLength(1);
    },
  );
});
