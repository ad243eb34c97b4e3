/**
 * Connections. `DATABASE_URL` when set; otherwise the embedded PostgreSQL
 * kept under the data directory (`.volstate/` by default).
 */
import { join } from 'node:path';
import postgres from 'postgres';
import { APP_DATABASE, runningEmbedded, startEmbedded, type EmbeddedServer } from './servers/embedded.ts';
import { SQLSTATE, sqlState } from './sqlstate.ts';

export type Sql = postgres.Sql;

/** Statements run on a pool or inside a transaction: the one executor type of every query module. */
export type Executor = postgres.Sql | postgres.TransactionSql;

type PgOptions = NonNullable<Parameters<typeof postgres>[1]>;

/**
 * A postgres.js client for a URL, honouring libpq's `host` query parameter
 * (`postgres://u:p@127.0.0.1:5432/db?host=/dir`: the directory of the
 * server's Unix-domain socket, as psql and pg_dump read it), which
 * postgres.js does not read from a URL. Every connection volstate makes goes
 * through here. The embedded PostgreSQL's URLs name its socket: a round trip
 * over it costs about a quarter less CPU than over loopback TCP, on both
 * sides (db/servers/embedded.ts).
 */
export function sqlClient(url: string, options: PgOptions = {}): Sql {
  const socket = socketOf(url);
  if (!socket) return postgres(url, options);
  return postgres(socket.url, { path: join(socket.dir, `.s.PGSQL.${socket.port}`), ...options });
}

/**
 * The socket directory a URL's `host` parameter names, and the URL without
 * it. Read without `new URL`: a multi-host URL (Patroni's
 * `host1:p1,host2:p2`) is not a WHATWG URL.
 */
function socketOf(url: string): { dir: string; port: string; url: string } | undefined {
  const m = /[?&]host=([^&#]*)/.exec(url);
  const dir = m ? decodeURIComponent(m[1]!) : undefined;
  if (!m || !dir?.startsWith('/')) return undefined;
  const rest = url.replace(/([?&])host=[^&#]*&?/, '$1').replace(/[?&]$/, '');
  const port = /^[^:]+:\/\/(?:[^@/]*@)?[^:/,]*:(\d+)/.exec(url)?.[1] ?? '5432';
  return { dir, port, url: rest };
}

/** The URL without a `host` parameter: the same server over TCP (for a proxy, or a tool that reads only TCP URLs). */
export function tcpUrl(url: string): string {
  return socketOf(url)?.url ?? url;
}

export { APP_DATABASE };

export interface ConnectOptions {
  /** pool size (postgres.js `max`) */
  max?: number;
  /** shows in pg_stat_activity */
  name?: string;
}

/**
 * Seconds before a connection that closed with an error is made again,
 * after `retries` such closes in a row anywhere in the pool: 50 ms doubling
 * to at most 1 s, with jitter. postgres.js's own backoff grows as 3^retries
 * to 20 s, and its count is shared by the whole pool and its LISTEN
 * connection: one outage under load (every pooled query failing to
 * connect) took it to the cap, and the LISTEN connection, which reconnects
 * through that delay, then came back up to 20 s after the database did —
 * the worker fell back to its poll and every `Prefer: wait` request to its
 * lease (3 s a step) until then (test/db/connect.test.ts).
 */
export function reconnectDelay(retries: number): number {
  return (0.5 + Math.random() / 2) * Math.min(0.05 * 2 ** retries, 1);
}

/**
 * A postgres.js pool. Statements are prepared (postgres.js caches them per
 * connection). Queries use postgres.js directly; drizzle owns the schema
 * and the migrations (see db/migrate.ts for why it gets its own connection).
 */
export function connect(url: string, opts: ConnectOptions = {}): Sql {
  return sqlClient(url, {
    max: opts.max ?? 10,
    prepare: true,
    onnotice: () => {},
    idle_timeout: 60,
    connect_timeout: 10,
    backoff: reconnectDelay,
    connection: { application_name: opts.name ?? 'volstate' },
  });
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** CREATE DATABASE, tolerating "already exists" (two nodes starting at once). */
export async function ensureDatabase(adminUrl: string, name: string, template?: string): Promise<void> {
  const admin = sqlClient(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await admin`SELECT 1 AS one FROM pg_database WHERE datname = ${name}`;
    if (row) return;
    const from = template ? ` TEMPLATE ${ident(template)} STRATEGY FILE_COPY` : '';
    await admin.unsafe(`CREATE DATABASE ${ident(name)}${from}`);
  } catch (err) {
    if (sqlState(err) !== SQLSTATE.DUPLICATE_DATABASE && sqlState(err) !== SQLSTATE.UNIQUE_VIOLATION) throw err;
  } finally {
    await admin.end({ timeout: 1 }); // a bare end() hangs on a session the server ended (see db/migrate.ts)
  }
}

export interface DatabaseLocation {
  /** the application database */
  url: string;
  /** set when we started the embedded server ourselves */
  embedded?: EmbeddedServer;
}

/**
 * DATABASE_URL if given, else the embedded server under `dataDir`: started
 * here, or — with `share`, for the short-lived commands (check, purge,
 * migrate, db) — the one a running node already started there.
 */
export async function locateDatabase(opts: { url?: string; dataDir: string; port?: number; share?: boolean }): Promise<DatabaseLocation> {
  if (opts.url) return { url: opts.url };
  const running = opts.share ? runningEmbedded(join(opts.dataDir, 'db')) : undefined;
  if (running) return { url: running.urlFor(APP_DATABASE) };
  const embedded = await startEmbedded({ dir: join(opts.dataDir, 'db'), port: opts.port });
  await ensureDatabase(embedded.adminUrl, APP_DATABASE);
  return { url: embedded.urlFor(APP_DATABASE), embedded };
}
