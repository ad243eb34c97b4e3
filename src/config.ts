/**
 * Configuration from the environment, read once at startup. A bad value
 * stops the process with a message naming the variable, never a default
 * silently taken instead.
 */
import { transportUrls, type NotifyConfig } from './notify/config.ts';
import { KeystoneAuth, type KeystoneAuthOptions } from './auth/keystone.ts';
import { defaultLogFormat, type LogFormat } from './logging.ts';
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import type { AuthOptions, TokenInfo } from './api/context.ts';
import { parseDuration } from './duration.ts';

export type DriverName = 'file' | 'fake';

/**
 * The node's pool (VOLSTATE_DB_POOL). Past the connections PostgreSQL can run at once, more
 * only queue in PostgreSQL, where a waiting backend still costs its switches and its share of
 * every lock and WAL flush; short of them, postgres.js sends a query down a busy connection
 * (pipelined, no round trip waited) rather than wait for a free one. Measured with 16 clients on
 * two cores (`npm run bench:control`, docs/numbers.md): 8 did 1.07–1.82 × the lifecycles of 20
 * in seven alternating pairs (an eighth, beside other load, 0.87 ×), about 1.1 × in a calm hour,
 * and 20 fell more often into rounds 35–40 % slower. Smaller also lets more nodes share one database
 * (docs/active-active.md, "The connections a node costs").
 */
export const DEFAULT_DB_POOL = 8;

export interface Config {
  host: string;
  port: number;
  /** DATABASE_URL; unset = the embedded PostgreSQL under dataDir */
  databaseUrl: string | undefined;
  /** VOLSTATE_DATA_DIR: embedded database, volume files */
  dataDir: string;
  /** VOLSTATE_AUTH (noauth | tokens | keystone), VOLSTATE_DEFAULT_PROJECT, VOLSTATE_TOKENS_FILE, VOLSTATE_KEYSTONE_* */
  auth: AuthOptions;
  driver: DriverName;
  /**
   * VOLSTATE_DRIVER_LATENCY_MS, VOLSTATE_DRIVER_FAILURES, VOLSTATE_DRIVER_JOURNAL:
   * fault injection around the driver (src/drivers/faults.ts), off by default
   */
  faults: { latencyMs: number; failures: Record<string, number>; journal: string | undefined };
  /**
   * VOLSTATE_FILE_DIR: the file driver's storage; default `<data dir>/storage`.
   * Nodes of one deployment share it (it is their backend).
   */
  fileDir: string;
  /**
   * VOLSTATE_BACKUP_DIR: the posix backup store's root (src/backup/posix.ts),
   * default `<data dir>/backups`; nodes of one deployment share it (an NFS
   * mount in production). VOLSTATE_BACKUP_CHUNK_MB: bytes read and written
   * per step (default 32 MiB); VOLSTATE_BACKUP_COMPRESSION: zstd (default), zlib or none.
   */
  backup: { dir: string; chunkMb: number; compression: 'zstd' | 'zlib' | 'none' };
  /** VOLSTATE_FILE_CAPACITY_GB: capacity the file driver reports (thin); default the filesystem's size */
  fileCapacityGb: number | undefined;
  /**
   * VOLSTATE_BACKENDS: the backends, `name:driver[:dir]` comma-separated
   * (e.g. `gold:file:/srv/gold,silver:file:/srv/silver`); a file backend
   * without a dir stores under `<VOLSTATE_FILE_DIR>/<name>`. Default: one
   * backend named after VOLSTATE_DRIVER, storing in VOLSTATE_FILE_DIR. Every
   * node of a deployment must have the same list (src/drivers/backends.ts).
   */
  backends: { name: string; driver: DriverName; dir: string; vendor?: string; protocol?: string }[];
  /** VOLSTATE_HOST: the host this node's services are listed under (os-services, volumes' host); default the machine's host name */
  serviceHost: string;
  /** VOLSTATE_DEFAULT_GROUP_TYPE: the name of the group type GET /group_types/default answers (Cinder's default_group_type); unset: none, 404 */
  defaultGroupType: string | undefined;
  worker: {
    /** steps run at once by one worker */
    concurrency: number;
    /**
     * VOLSTATE_BACKUP_CONCURRENCY (default 2): of those, steps that stream a
     * volume's data (backups, restores, imports) at once: the backup lane
     * (machines' meta.backupLane), so they never take every slot from volume
     * operations. Cinder's backup_max_operations, per worker.
     */
    backupConcurrency: number;
    /** safety-net poll when no NOTIFY arrives */
    pollMs: number;
    heartbeatMs: number;
    /** a worker silent this long is dead, and its rows are recovered */
    timeoutMs: number;
    /** on SIGTERM, in-flight steps get this long to finish */
    drainMs: number;
  };
  /**
   * VOLSTATE_RETENTION (e.g. `30d`): workers purge deleted resources and
   * history older than this (db/retention.ts); unset keeps everything.
   * VOLSTATE_RETENTION_INTERVAL (default `10m`): how often a worker runs a
   * retention round (which also makes the history's partitions ahead).
   */
  retention: { keepMs: number | undefined; everyMs: number };
  /**
   * The connections a node holds (docs/active-active.md, "The connections a node costs"):
   * VOLSTATE_DB_POOL (default DEFAULT_DB_POOL, 8) for requests and steps, and
   * VOLSTATE_LOCK_IDLE_SESSIONS (default 2) global-lock sessions kept open between waits (a free
   * lock is taken on one shared session; a session of its own only waits for one held elsewhere).
   */
  connections: { pool: number; lockIdle: number };
  /**
   * VOLSTATE_GROUP_COMMIT (default 0: off; 2 or more: on): at most this many rows per grouped
   * statement; VOLSTATE_GROUP_COMMIT_WINDOW_MS (default 0: the current turn of the event
   * loop): how long the first transition waits for company (src/group-commit.ts). Off by
   * default: in bench:control's create/extend/delete lifecycle most transitions need a
   * transaction (quota, leases), which is not grouped, and deferring the rest by a turn made
   * create → available 1.10-1.15 × slower at p50 under 16 clients (lifecycles 0.99 ×).
   */
  groupCommit: { max: number; windowMs: number };
  /**
   * How long a request whose database connection was lost mid-change waits
   * for the database to tell what it did (src/api/changes.ts): longer than
   * a failover takes (Patroni: ttl + loop_wait), or those requests answer
   * 503 "outcome unknown" instead of the truth.
   */
  inDoubtMs: number;
  /**
   * VOLSTATE_DB_START_WAIT_MS: how long a starting node waits for its
   * database to answer (it is restarting, failing over) before the start
   * fails, as oslo.db's max_retries × retry_interval has a Cinder service wait.
   */
  startWaitMs: number;
  /**
   * Cinder's notifications on RabbitMQ (src/notify/), off unless
   * VOLSTATE_NOTIFY_URL is set, as oslo's transport_url:
   * `rabbit://user:password@host:5672/` (several hosts comma-separated).
   * VOLSTATE_NOTIFY_EXCHANGE (control_exchange, default `cinder`),
   * VOLSTATE_NOTIFY_TOPICS (notification topics, default `notifications`),
   * VOLSTATE_NOTIFY_DURABLE (amqp_durable_queues, default false as oslo's:
   * set it, and the consumers' amqp_durable_queues, for notifications that
   * outlive a broker restart while queued).
   */
  notify: NotifyConfig | undefined;
  logLevel: string;
  /** VOLSTATE_LOG_FORMAT: json or pretty; default pretty on a terminal, json otherwise */
  logFormat: LogFormat;
}

export class ConfigError extends Error {}

function logFormatOf(env: NodeJS.ProcessEnv): LogFormat {
  const raw = env.VOLSTATE_LOG_FORMAT;
  if (raw === undefined || raw === '') return defaultLogFormat();
  if (raw !== 'json' && raw !== 'pretty') throw new ConfigError(`VOLSTATE_LOG_FORMAT=${raw}: expected json or pretty`);
  return raw;
}

function int(env: NodeJS.ProcessEnv, name: string, fallback: number, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new ConfigError(`${name}=${raw}: expected an integer between ${min} and ${max}`);
  }
  return n;
}

/** `create:0.1,delete:0.5` → { create: 0.1, delete: 0.5 } */
function rates(env: NodeJS.ProcessEnv, name: string): Record<string, number> {
  const raw = env[name];
  if (!raw) return {};
  const out: Record<string, number> = {};
  for (const part of raw.split(',')) {
    const [op, rate] = part.split(':');
    const r = Number(rate);
    if (!op || !Number.isFinite(r) || r < 0 || r > 1) {
      throw new ConfigError(`${name}=${raw}: expected op:rate pairs with rates between 0 and 1, e.g. create:0.1,extend:0.5`);
    }
    out[op.trim()] = r;
  }
  return out;
}

/**
 * VOLSTATE_BACKUP_COMPRESSION, Cinder's backup_compression_algorithm: zstd
 * (our default: level 1 keeps up with the disk, docs/backups.md), zlib
 * (Cinder's default), or none (off, no: Cinder's spellings).
 */
function compressionOf(value: string | undefined): 'zstd' | 'zlib' | 'none' {
  const v = (value || 'zstd').toLowerCase();
  if (v === 'zstd') return 'zstd';
  if (v === 'zlib' || v === 'gzip') return 'zlib';
  if (v === 'none' || v === 'off' || v === 'no') return 'none';
  throw new ConfigError(`VOLSTATE_BACKUP_COMPRESSION=${value} is not one of zstd, zlib, none`);
}

/**
 * The tokens file: `{"tokens": [{"token": "...", "user": "alice", "project": "p1", "roles": ["member"]}]}`;
 * role `admin` makes a caller admin.
 */

export function loadTokens(path: string): Map<string, TokenInfo> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`VOLSTATE_TOKENS_FILE=${path}: ${(err as Error).message}`);
  }
  const list = (parsed as { tokens?: unknown })?.tokens;
  if (!Array.isArray(list)) throw new ConfigError(`VOLSTATE_TOKENS_FILE=${path}: expected {"tokens": [...]}`);
  const out = new Map<string, TokenInfo>();
  for (const [i, t] of list.entries()) {
    const { token, user, project, roles } = (t ?? {}) as Record<string, unknown>;
    if (
      typeof token !== 'string' ||
      !token ||
      typeof user !== 'string' ||
      typeof project !== 'string' ||
      !Array.isArray(roles) ||
      !roles.every((r) => typeof r === 'string')
    ) {
      throw new ConfigError(
        `VOLSTATE_TOKENS_FILE=${path}: tokens[${i}] needs token, user, project (strings) and roles (a list of strings)`,
      );
    }
    out.set(token, { user, project, roles });
  }
  return out;
}

/** keystone mode: where Keystone is, the service user that validates tokens, the cache. */
function keystoneOf(env: NodeJS.ProcessEnv): KeystoneAuthOptions {
  const need = (name: string) => {
    const v = env[name];
    if (!v) throw new ConfigError(`VOLSTATE_AUTH=keystone needs ${name}`);
    return v;
  };
  const url = need('VOLSTATE_KEYSTONE_URL').replace(/\/+$/, '');
  if (!/^https?:\/\/[^/]+.*\/v3$/.test(url))
    throw new ConfigError(`VOLSTATE_KEYSTONE_URL=${url}: expected Keystone's v3 URL, e.g. http://127.0.0.1:5000/v3`);
  return {
    url,
    user: need('VOLSTATE_KEYSTONE_USER'),
    password: need('VOLSTATE_KEYSTONE_PASSWORD'),
    project: env.VOLSTATE_KEYSTONE_PROJECT || 'service',
    domain: env.VOLSTATE_KEYSTONE_DOMAIN || 'default',
    cacheSeconds: int(env, 'VOLSTATE_KEYSTONE_CACHE_SECONDS', 300, 0, 86_400),
    maxEntries: int(env, 'VOLSTATE_KEYSTONE_CACHE_ENTRIES', 10_000, 1, 10_000_000),
    timeoutMs: int(env, 'VOLSTATE_KEYSTONE_TIMEOUT_MS', 5000, 100, 120_000),
  };
}

function notifyOf(env: NodeJS.ProcessEnv): NotifyConfig | undefined {
  if (!env.VOLSTATE_NOTIFY_URL) return undefined;
  let urls: string[];
  try {
    urls = transportUrls(env.VOLSTATE_NOTIFY_URL);
  } catch (err) {
    throw new ConfigError(`VOLSTATE_NOTIFY_URL: ${(err as Error).message}`);
  }
  const name = /^[A-Za-z0-9_.-]{1,255}$/;
  const exchange = env.VOLSTATE_NOTIFY_EXCHANGE || 'cinder';
  if (!name.test(exchange)) throw new ConfigError(`VOLSTATE_NOTIFY_EXCHANGE=${exchange}: expected letters, digits, _ . -`);
  const topics = (env.VOLSTATE_NOTIFY_TOPICS || 'notifications').split(',').map((t) => t.trim());
  for (const t of topics) if (!name.test(t)) throw new ConfigError(`VOLSTATE_NOTIFY_TOPICS: "${t}": expected letters, digits, _ . -`);
  const durable = env.VOLSTATE_NOTIFY_DURABLE ?? 'false';
  if (durable !== 'true' && durable !== 'false') throw new ConfigError(`VOLSTATE_NOTIFY_DURABLE=${durable}: expected true or false`);
  return { urls, exchange, topics, durable: durable === 'true', host: serviceHostOf(env) };
}

function serviceHostOf(env: NodeJS.ProcessEnv): string {
  const host = env.VOLSTATE_HOST || hostname();
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(host))
    throw new ConfigError(`VOLSTATE_HOST=${host}: expected a host name (letters, digits, '.', '_', '-')`);
  return host;
}

function authOf(env: NodeJS.ProcessEnv): AuthOptions {
  const mode = env.VOLSTATE_AUTH ?? 'noauth';
  const defaultProject = env.VOLSTATE_DEFAULT_PROJECT ?? 'admin';
  if (mode === 'noauth') return { mode, defaultProject };
  if (mode === 'keystone') return { mode, defaultProject, keystone: new KeystoneAuth(keystoneOf(env)) };
  if (mode !== 'tokens') throw new ConfigError(`VOLSTATE_AUTH=${mode}: expected noauth, tokens or keystone`);
  if (!env.VOLSTATE_TOKENS_FILE) throw new ConfigError('VOLSTATE_AUTH=tokens needs VOLSTATE_TOKENS_FILE');
  return { mode, defaultProject, tokens: loadTokens(env.VOLSTATE_TOKENS_FILE) };
}

function duration(env: NodeJS.ProcessEnv, name: string): number {
  try {
    const ms = parseDuration(env[name]!, name);
    if (ms <= 0) throw new Error(`${name}: must be longer than 0`);
    return ms;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
}

function backendsOf(value: string | undefined, driver: DriverName, fileDir: string): Config['backends'] {
  if (value === undefined || value.trim() === '') return [{ name: driver, driver, dir: fileDir }];
  const out: Config['backends'] = [];
  for (const part of value
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    // Options after the location, `;`-separated: `gold:file:/srv/gold;vendor=Acme;protocol=iSCSI`.
    const [location = '', ...options] = part.split(';');
    const [name = '', kind = '', ...rest] = location.split(':');
    const extra: { vendor?: string; protocol?: string } = {};
    for (const option of options) {
      const m = /^(vendor|protocol)=(.{1,255})$/.exec(option.trim());
      if (!m)
        throw new ConfigError(`VOLSTATE_BACKENDS: "${part}": an option is vendor=<name> or protocol=<name> (after ;), not "${option}"`);
      extra[m[1] as 'vendor' | 'protocol'] = m[2]!;
    }
    if (!/^[A-Za-z0-9_.-]{1,64}$/.test(name))
      throw new ConfigError(`VOLSTATE_BACKENDS: "${part}": a backend name is 1 to 64 letters, digits, _ . -`);
    if (kind !== 'file' && kind !== 'fake')
      throw new ConfigError(`VOLSTATE_BACKENDS: "${part}": the driver is file or fake (name:driver[:dir])`);
    if (out.some((b) => b.name === name)) throw new ConfigError(`VOLSTATE_BACKENDS: backend ${name} is named twice`);
    out.push({ name, driver: kind, dir: rest.length > 0 ? resolve(rest.join(':')) : join(fileDir, name), ...extra });
  }
  if (out.length === 0) throw new ConfigError('VOLSTATE_BACKENDS is empty: name at least one backend (name:driver[:dir])');
  return out;
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const driver = env.VOLSTATE_DRIVER ?? 'file';
  if (driver !== 'file' && driver !== 'fake') throw new ConfigError(`VOLSTATE_DRIVER=${driver}: expected file or fake`);
  const heartbeatMs = int(env, 'VOLSTATE_HEARTBEAT_MS', 1000, 50);
  const timeoutMs = int(env, 'VOLSTATE_WORKER_TIMEOUT_MS', 5000, 200);
  // 64, as Cinder's volume service (oslo.messaging's executor_thread_pool_size): a step waiting on its
  // backend costs a promise, and since fences share one lock session (src/coordination/locks.ts)
  // no connection either. At 16, one node's slots, not its CPU, bounded it (bench:nodes, issue 19).
  const concurrency = int(env, 'VOLSTATE_WORKER_CONCURRENCY', 64, 1, 1024);
  if (timeoutMs < 2 * heartbeatMs) {
    throw new ConfigError(`VOLSTATE_WORKER_TIMEOUT_MS=${timeoutMs} must be at least twice VOLSTATE_HEARTBEAT_MS=${heartbeatMs}`);
  }
  const dataDir = resolve(env.VOLSTATE_DATA_DIR ?? '.volstate');
  return {
    host: env.HOST ?? '127.0.0.1',
    port: int(env, 'PORT', 8776, 0, 65535),
    databaseUrl: env.DATABASE_URL || undefined,
    serviceHost: serviceHostOf(env),
    defaultGroupType: env.VOLSTATE_DEFAULT_GROUP_TYPE || undefined,
    dataDir,
    auth: authOf(env),
    driver,
    faults: {
      latencyMs: int(env, 'VOLSTATE_DRIVER_LATENCY_MS', 0),
      failures: rates(env, 'VOLSTATE_DRIVER_FAILURES'),
      journal: env.VOLSTATE_DRIVER_JOURNAL || undefined,
    },
    fileDir: resolve(env.VOLSTATE_FILE_DIR || join(dataDir, 'storage')),
    backup: {
      dir: resolve(env.VOLSTATE_BACKUP_DIR || join(dataDir, 'backups')),
      chunkMb: int(env, 'VOLSTATE_BACKUP_CHUNK_MB', 32, 1, 4096),
      compression: compressionOf(env.VOLSTATE_BACKUP_COMPRESSION),
    },
    fileCapacityGb: env.VOLSTATE_FILE_CAPACITY_GB ? int(env, 'VOLSTATE_FILE_CAPACITY_GB', 0, 1) : undefined,
    backends: backendsOf(env.VOLSTATE_BACKENDS, driver, resolve(env.VOLSTATE_FILE_DIR || join(dataDir, 'storage'))),
    worker: {
      concurrency,
      backupConcurrency: int(env, 'VOLSTATE_BACKUP_CONCURRENCY', Math.min(2, concurrency), 1, concurrency),
      pollMs: int(env, 'VOLSTATE_WORKER_POLL_MS', 2000, 50),
      heartbeatMs,
      timeoutMs,
      drainMs: int(env, 'VOLSTATE_DRAIN_MS', 10_000, 0),
    },
    // A free fence is taken on the one shared lock session; a session of its own is opened only to
    // wait for a fence another node holds (recovery, a frozen worker), and a couple are kept for the next.
    connections: {
      pool: int(env, 'VOLSTATE_DB_POOL', DEFAULT_DB_POOL, 2, 1000),
      lockIdle: int(env, 'VOLSTATE_LOCK_IDLE_SESSIONS', 2, 0, 1000),
    },
    groupCommit: {
      max: int(env, 'VOLSTATE_GROUP_COMMIT', 0, 0, 10_000),
      windowMs: int(env, 'VOLSTATE_GROUP_COMMIT_WINDOW_MS', 0, 0, 1000),
    },
    inDoubtMs: int(env, 'VOLSTATE_IN_DOUBT_MS', 45_000, 0, 600_000),
    startWaitMs: int(env, 'VOLSTATE_DB_START_WAIT_MS', 60_000, 0, 3_600_000),
    notify: notifyOf(env),
    retention: {
      keepMs: env.VOLSTATE_RETENTION ? duration(env, 'VOLSTATE_RETENTION') : undefined,
      everyMs: env.VOLSTATE_RETENTION_INTERVAL ? duration(env, 'VOLSTATE_RETENTION_INTERVAL') : 600_000,
    },
    logLevel: env.LOG_LEVEL ?? 'info',
    logFormat: logFormatOf(env),
  };
}
