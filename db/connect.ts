/**
 * Connections. `DATABASE_URL` when set; otherwise the embedded PostgreSQL
 * kept under the data directory (`.volstate/` by default).
 */
import { join } from 'node:path';
import postgres from 'postgres';
import { APP_DATABASE, runningEmbedded, startEmbedded, type EmbeddedServer } from './embedded.ts';
import { SQLSTATE, sqlState } from './sqlstate.ts';

export type Sql = postgres.Sql;

export { APP_DATABASE };

export interface ConnectOptions {
  /** pool size (postgres.js `max`) */
  max?: number;
  /** shows in pg_stat_activity */
  name?: string;
}

/**
 * A postgres.js pool. Statements are prepared (postgres.js caches them per
 * connection). Queries use postgres.js directly; drizzle owns the schema
 * and the migrations (see db/migrate.ts for why it gets its own connection).
 */
export function connect(url: string, opts: ConnectOptions = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    prepare: true,
    onnotice: () => {},
    idle_timeout: 60,
    connect_timeout: 10,
    connection: { application_name: opts.name ?? 'volstate' },
  });
}

const ident = (name: string) => `"${name.replaceAll('"', '""')}"`;

/** CREATE DATABASE, tolerating "already exists" (two nodes starting at once). */
export async function ensureDatabase(adminUrl: string, name: string, template?: string): Promise<void> {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const [row] = await admin`SELECT 1 AS one FROM pg_database WHERE datname = ${name}`;
    if (row) return;
    const from = template ? ` TEMPLATE ${ident(template)} STRATEGY FILE_COPY` : '';
    await admin.unsafe(`CREATE DATABASE ${ident(name)}${from}`);
  } catch (err) {
    if (sqlState(err) !== SQLSTATE.DUPLICATE_DATABASE && sqlState(err) !== SQLSTATE.UNIQUE_VIOLATION) throw err;
  } finally {
    await admin.end();
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
