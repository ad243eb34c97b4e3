/**
 * The API under test: the real app on this file's own database, with a
 * real worker and the fake driver. Requests go through `inject` or, with
 * `listen: true`, over real HTTP on a loopback port.
 */
import type { FastifyInstance } from 'fastify';
import { afterAll, beforeAll } from 'vitest';
import type { AuthOptions } from '../../src/api/context.ts';
import { build } from '../../src/app.ts';
import type { Backends } from '../../src/drivers/backends.ts';
import type { PosixBackupStore } from '../../src/backup/posix.ts';
import { FakeDriver } from '../../src/drivers/fake.ts';
import { FaultyDriver } from '../../src/drivers/faults.ts';
import { Enforcer } from '../../src/enforcer.ts';
import { Worker } from '../../src/worker/worker.ts';
import type { NotifyConfig } from '../../src/notify/config.ts';
import { useTestDatabase, type TestDatabase } from './db.ts';
import { captureServerErrors } from './server-errors.ts';
import { eventually } from './wait.ts';

export { eventually } from './wait.ts';

export const PROJECT = '0123456789abcdef0123456789abcdef';
export const HEADERS = {
  'x-auth-token': `admin:${PROJECT}`,
  'openstack-api-version': 'volume 3.70',
  'content-type': 'application/json',
};

export interface Reply<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Record<string, string | string[] | undefined>;
}

export interface TestApp {
  readonly db: TestDatabase;
  readonly app: FastifyInstance;
  readonly worker: Worker | undefined;
  /** the in-memory backend, to look at what the driver did */
  readonly backend: FakeDriver;
  /** the driver the app and worker call: the backend behind fault injection (latency, failures) */
  readonly faults: FaultyDriver<FakeDriver>;
  /** http://127.0.0.1:port when listening */
  readonly url: string;
  /** every 5xx the app answered, with what the server logged for it (also printed as it happens) */
  readonly serverErrors: readonly string[];
  request<T = Record<string, any>>(method: string, path: string, body?: unknown, headers?: Record<string, string>): Promise<Reply<T>>;
}

export interface TestAppOptions {
  latencyMs?: number;
  failures?: Record<string, number>;
  /** run a worker (default true) */
  worker?: boolean;
  listen?: boolean;
  concurrency?: number;
  /** the worker's backup lane (default min(2, concurrency)) */
  backupConcurrency?: number;
  auth?: AuthOptions;
  /** serve these backends instead of the fake one (`backend` and `faults` then name an unused fake) */
  backends?: Backends;
  /** where the worker writes backups (absent: backup steps fail, saying so) */
  backupStore?: PosixBackupStore;
  /** the worker relays notifications here (read when the app starts: a broker started by an earlier beforeAll) */
  notify?: () => NotifyConfig;
}

export function useApp(opts: TestAppOptions = {}): TestApp {
  const db = useTestDatabase({ max: 30 });
  let app: FastifyInstance | undefined;
  let worker: Worker | undefined;
  let url: string | undefined;
  const backend = new FakeDriver();
  const driver = new FaultyDriver(backend, { latencyMs: opts.latencyMs ?? 0, failures: opts.failures ?? {} });
  const captured = captureServerErrors();
  beforeAll(async () => {
    const enforcer = new Enforcer();
    app = await build({
      sql: db.sql,
      enforcer,
      driver: opts.backends ?? driver,
      auth: opts.auth ?? { mode: 'noauth', defaultProject: 'admin' },
      worker: () => worker,
      // A 5xx prints the server's error with its stack (VOLSTATE_TEST_LOG=debug shows the whole log).
      logger: captured.logger,
    });
    captured.watch(app);
    if (opts.worker !== false) {
      worker = new Worker({
        sql: db.sql,
        enforcer,
        driver: opts.backends ?? driver,
        concurrency: opts.concurrency ?? 8,
        backupConcurrency: opts.backupConcurrency,
        pollMs: 200,
        backupStore: opts.backupStore,
        notify: opts.notify?.(),
        // A step that fails (a bug or an outage, not a backend failure) hands its row back to wait out a
        // backoff: say why, so a test that meets one names it.
        log: (msg, fields) => {
          if (msg.startsWith('step failed') || msg.startsWith('notifications: a round failed'))
            console.error(`[worker] ${msg} ${JSON.stringify(fields)}`);
        },
      });
      await worker.start();
    }
    if (opts.listen) url = await app.listen({ host: '127.0.0.1', port: 0 });
    else await app.ready();
  });
  afterAll(async () => {
    await worker?.stop();
    await app?.close();
  });
  return {
    db,
    get app() {
      return app!;
    },
    get worker() {
      return worker;
    },
    backend,
    faults: driver,
    serverErrors: captured.errors,
    get url() {
      if (!url) throw new Error('the app does not listen; pass listen: true');
      return url;
    },
    async request(method, path, body, headers) {
      const res = await app!.inject({
        method: method as 'GET',
        url: path,
        headers: { ...HEADERS, ...headers },
        ...(body === undefined ? {} : { payload: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      let parsed: unknown = undefined;
      if (res.body) {
        try {
          parsed = JSON.parse(res.body);
        } catch {
          parsed = res.body;
        }
      }
      return { status: res.statusCode, body: parsed as never, headers: res.headers as Reply['headers'] };
    },
  };
}

/** Create a volume and wait until it is available. */
export async function availableVolume(t: TestApp, size = 1, extra: Record<string, unknown> = {}): Promise<string> {
  const res = await t.request('POST', '/v3/volumes', { volume: { size, ...extra } });
  if (res.status !== 202) throw new Error(`create failed: ${res.status} ${JSON.stringify(res.body)}`);
  const id = (res.body as { volume: { id: string } }).volume.id;
  await waitStatus(t, 'volumes', id, 'available');
  return id;
}

/** Wait until GET shows `status` (or 404 when status is 'gone'); returns the resource as shown. */
export async function waitStatus(
  t: TestApp,
  collection: 'volumes' | 'snapshots' | 'backups' | 'groups' | 'group_snapshots',
  id: string,
  status: string,
  ms = 10_000,
  headers?: Record<string, string>,
): Promise<any> {
  return eventually<unknown>(
    async () => {
      const res = await t.request('GET', `/v3/${collection}/${id}`, undefined, headers);
      if (status === 'gone') return res.status === 404 ? res : undefined;
      const item = (res.body as Record<string, { status: string }>)[collection.slice(0, -1)];
      return item?.status === status ? item : undefined;
    },
    ms,
    `${collection} ${id} to be ${status}`,
  );
}
