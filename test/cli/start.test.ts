/**
 * The first minutes of a newcomer, as real processes: usage on --help, a
 * start that says what it is doing, health endpoints, and a start that
 * fails stopping everything it had started (no orphaned PostgreSQL).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { connect as tcpConnect, createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { tcpUrl } from '../../db/connect.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { until } from '../helpers/wait.ts';
import { volstateArgs } from '../../src/launch.ts';

// Node itself, not npx: npx does not pass signals on (a server would outlive its test) and is slow
// to start. The sources bundled as the harness starts its nodes (src/launch.ts): 1 s a start, not 2
// with tsx's loader (readme.test.ts runs bin/volstate.js, the user's way in, through tsx).
const CLI = await volstateArgs();

function run(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...CLI, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('exit', (code) => resolve({ code, out, err }));
  });
}

/** PostgreSQL processes whose command line names `dir`. */
function postgresUnder(dir: string): string[] {
  try {
    return execFileSync('pgrep', ['-af', dir], { encoding: 'utf8' })
      .split('\n')
      .filter((l) => l.includes('postgres') && !l.includes('pgrep'));
  } catch {
    return [];
  }
}

/**
 * A child's output stream as it grows: `text()` so far, and `shows(pattern)`, which resolves
 * when the text matches (woken by each write, never by a timer) and rejects if the child exits first.
 */
function watch(child: ChildProcess, stream: NodeJS.ReadableStream): { text(): string; shows(pattern: RegExp): Promise<RegExpExecArray> } {
  let text = '';
  const waiting = new Set<() => void>();
  stream.on('data', (d: Buffer) => {
    text += d.toString();
    for (const check of waiting) check();
  });
  return {
    text: () => text,
    shows: (pattern) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const m = pattern.exec(text);
          if (m) {
            waiting.delete(check);
            resolve(m);
          }
        };
        waiting.add(check);
        child.once('exit', (code) => reject(new Error(`exited ${code}: ${text}`)));
        check();
      }),
  };
}

const dirs: string[] = [];
function dataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-start-'));
  chmodSync(dir, 0o755); // as root, the embedded PostgreSQL runs as user postgres
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('volstate on the command line', () => {
  it('prints its usage on --help, -h and help, and exits 0', async () => {
    // Seven independent processes: started together (each spends most of its time loading).
    const [help, h, helpWord, purge, serveHelp, harnessHelp, bad] = await Promise.all(
      [['--help'], ['-h'], ['help'], ['purge', '--help'], ['serve', '--help'], ['harness', '--help'], ['serve', '--bogus']].map((args) =>
        run(args),
      ),
    );
    for (const [flag, r] of [
      ['--help', help],
      ['-h', h],
      ['help', helpWord],
    ] as const) {
      expect(r!.code, flag).toBe(0);
      expect(r!.out).toMatch(/^usage: volstate <command>/);
      expect(r!.out).toMatch(/serve \[--host H\] \[--port N\]/);
    }
    // A command's --help is that command's usage, with the lines under it.
    expect(purge!.code).toBe(0);
    expect(purge!.out).toMatch(/^usage: volstate purge --before 30d/);
    expect(purge!.out).toMatch(/VOLSTATE_RETENTION/);
    expect(purge!.out).not.toMatch(/harness/);
    for (const [command, r] of [
      ['serve', serveHelp],
      ['harness', harnessHelp],
    ] as const) {
      expect(r!.code, command).toBe(0);
      expect(r!.out, command).toMatch(new RegExp(`^usage: volstate ${command}\\b`));
    }
    expect(bad!.code).toBe(2);
    expect(bad!.err).toMatch(/Unknown option '--bogus'/);
  }, 120_000);

  it('on a busy port, says so and starts nothing', async () => {
    const busy: Server = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    const dir = dataDir();
    try {
      const r = await run(['serve', '--port', String(port)], { VOLSTATE_DATA_DIR: dir, DATABASE_URL: '' });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(new RegExp(`127\\.0\\.0\\.1:${port} is already in use`));
      expect(r.err).not.toMatch(/starting the embedded PostgreSQL/);
      expect(postgresUnder(dir)).toEqual([]);
    } finally {
      busy.close();
    }
  });

  it('a start that fails after the embedded PostgreSQL started stops it again', async () => {
    const dir = dataDir();
    // The file driver cannot make its directories under a regular file: it fails after the database is up.
    const r = await run(['serve', '--port', '0'], { VOLSTATE_DATA_DIR: dir, DATABASE_URL: '', VOLSTATE_FILE_DIR: '/etc/hostname/storage' });
    expect(r.code).toBe(1);
    expect(r.err).toMatch(/starting the embedded PostgreSQL/);
    expect(r.err).toMatch(/applying database migrations/);
    expect(r.err).toMatch(/ENOTDIR/);
    expect(postgresUnder(dir)).toEqual([]);
  }, 120_000);

  it('waits for a database that does not answer yet (restarting, failing over), then serves', async () => {
    const target = new URL(tcpUrl(await createTestDatabase()));
    // A "database" that drops every connection until the test lets it through to the real one.
    let open = false;
    const sockets = new Set<Socket>();
    const gate = createServer((client) => {
      sockets.add(client);
      if (!open) return void client.destroy();
      const upstream = tcpConnect(Number(target.port), target.hostname);
      sockets.add(upstream);
      client.pipe(upstream).pipe(client);
      const end = () => (client.destroy(), upstream.destroy());
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
    });
    await new Promise<void>((resolve) => gate.listen(0, '127.0.0.1', resolve));
    const through = new URL(target);
    through.port = String((gate.address() as { port: number }).port);
    const child = spawn(process.execPath, [...CLI, 'serve', '--port', '0'], {
      env: {
        ...process.env,
        DATABASE_URL: through.toString(),
        VOLSTATE_DRIVER: 'fake',
        VOLSTATE_DATA_DIR: dataDir(),
        VOLSTATE_DB_START_WAIT_MS: '120000',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    try {
      const err = watch(child, child.stderr);
      await err.shows(/the database does not answer yet \([^)]+\); trying again every second, for up to 120 s/);
      open = true;
      const api = (await err.shows(/serving the Cinder v3 API at (http:\/\/[^\s]+)\/v3/))[1]!;
      expect((await fetch(`${api}/readyz`)).status).toBe(200);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => (child.exitCode === null ? child.once('exit', r) : r(null)));
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => gate.close(resolve));
    }
  }, 120_000);

  it('a database that never answers fails the start once the wait is over, saying why', async () => {
    const closed = createServer((c) => c.destroy());
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    try {
      const r = await run(['serve', '--port', '0'], {
        DATABASE_URL: `postgres://volstate@127.0.0.1:${port}/volstate`,
        VOLSTATE_DRIVER: 'fake',
        VOLSTATE_DATA_DIR: dataDir(),
        VOLSTATE_DB_START_WAIT_MS: '0',
      });
      expect(r.code).toBe(1);
      expect(r.err).toMatch(/applying database migrations/);
      expect(r.err).not.toMatch(/trying again/);
      expect(r.err).toMatch(/volstate: .*(ECONNRESET|CONNECTION_CLOSED|closed|reset)/i);
    } finally {
      await new Promise((resolve) => closed.close(resolve));
    }
  }, 60_000);

  it('says what it is doing while it starts, then answers /healthz and /readyz', async () => {
    const url = await createTestDatabase();
    const child: ChildProcess = spawn(process.execPath, [...CLI, 'serve', '--port', '0'], {
      env: { ...process.env, DATABASE_URL: url, VOLSTATE_DRIVER: 'fake', VOLSTATE_DATA_DIR: dataDir(), VOLSTATE_LOG_FORMAT: 'pretty' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const log = watch(child, child.stdout!);
    const stderr = watch(child, child.stderr!);
    const api = (await stderr.shows(/serving the Cinder v3 API at (http:\/\/[^\s]+)\/v3/))[1]!;
    const err = stderr.text();
    try {
      expect(err).toMatch(/connecting to the PostgreSQL of DATABASE_URL[\s\S]*applying database migrations[\s\S]*listening on/);
      const health = await fetch(`${api}/healthz`);
      expect(health.status).toBe(200);
      expect(await health.json()).toEqual({ status: 'ok' });
      const ready = await fetch(`${api}/readyz`);
      const body = (await ready.json()) as any;
      expect(ready.status, JSON.stringify(body)).toBe(200);
      expect(body.status).toBe('ready');
      expect(Object.keys(body.checks).sort()).toEqual(['database', 'migrations', 'worker']);
      // One human line per request on a terminal-style log: method, path, status, time.
      const missing = crypto.randomUUID();
      await fetch(`${api}/v3/volumes/${missing}`);
      await log.shows(new RegExp(`GET /v3/volumes/${missing} 404`));
      const out = log.text();
      expect(out).toMatch(new RegExp(`INFO {2}GET /v3/volumes/${missing} 404 [0-9.]+ms {2}fault=Volume ${missing} could not be found\\.`));
      expect(out.split('\n').filter((l) => l.includes('GET /healthz'))).toHaveLength(1);
    } finally {
      child.kill('SIGTERM');
      await new Promise((r) => child.once('exit', r));
    }
  }, 60_000);
});

/** Once the child serves the API: a reader of its stderr so far (it keeps collecting); rejects if it exits first. */
function serving(child: ChildProcess): Promise<() => string> {
  let err = '';
  return new Promise((resolve, reject) => {
    child.stderr!.on('data', (d: Buffer) => {
      err += d.toString();
      if (/serving the Cinder v3 API/.test(err)) resolve(() => err);
    });
    child.on('exit', (code) => reject(new Error(`exited ${code}: ${err}`)));
  });
}

describe('the embedded PostgreSQL of a running node', () => {
  /** `volstate serve` on the embedded PostgreSQL of `dir`, once it serves; and its stderr so far. */
  async function serveOn(dir: string) {
    const child = spawn(process.execPath, [...CLI, 'serve', '--port', '0'], {
      env: { ...process.env, DATABASE_URL: '', VOLSTATE_DATA_DIR: dir, VOLSTATE_DRIVER: 'fake' },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    const stderr = await serving(child);
    const stop = async () => {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    };
    return { err: stderr(), stop };
  }

  it('is found by check, purge and db (same data directory); only the first start says it initialises', async () => {
    const dir = dataDir();
    const first = await serveOn(dir);
    try {
      expect(first.err).toMatch(/its first start: initialising it takes a while/);
      const env = { DATABASE_URL: '', VOLSTATE_DATA_DIR: dir };
      const check = await run(['check'], env);
      expect(check.code, check.err).toBe(0);
      expect(check.out).toMatch(/0 violations/);
      const purge = await run(['purge', '--before', '30d'], env);
      expect(purge.code, purge.err).toBe(0);
      expect(purge.out).toMatch(/purged what was deleted before/);
      const db = await run(['db'], env);
      expect(db.code, db.err).toBe(0);
      expect(db.out).toMatch(/^DATABASE_URL=postgres:\/\/postgres:[^@]+@127\.0\.0\.1:\d+\/volstate\?host=%2F\S+$/m); // its Unix socket (db/servers/embedded.ts)
      expect(db.err).toMatch(/running already \(process \d+\)/);
      // A second server on the same directory is refused, and told the URL to share.
      const second = await run(['serve', '--port', '0'], { ...env, VOLSTATE_DRIVER: 'fake' });
      expect(second.code).toBe(1);
      expect(second.err).toMatch(/in use by process \d+ \(port \d+\)\. Share it: DATABASE_URL=postgres:\/\//);
    } finally {
      await first.stop();
    }
    const again = await serveOn(dir);
    await again.stop();
    expect(again.err).toMatch(/starting the embedded PostgreSQL under/);
    expect(again.err).not.toMatch(/initialising/);
  }, 180_000);
});

describe('stopping volstate', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)(
    '%s to the whole process group of `npm start` (Ctrl-C, or a supervisor) stops the embedded PostgreSQL too',
    async (SIGNAL) => {
      const dir = dataDir();
      const child = spawn('npm', ['start'], {
        env: { ...process.env, DATABASE_URL: '', VOLSTATE_DATA_DIR: dir, VOLSTATE_DRIVER: 'fake', PORT: '0' },
        stdio: ['ignore', 'ignore', 'pipe'],
        detached: true, // its own process group, as a terminal's foreground job
      });
      const stderr = await serving(child);
      expect(postgresUnder(dir).length).toBeGreaterThan(0);
      const exited = new Promise((r) => child.once('exit', r));
      process.kill(-child.pid!, SIGNAL);
      await exited;
      // npm exits when its child does; give the child's own exit a moment to be reaped, by waiting on the database's.
      await eventuallyGone(dir);
      expect(postgresUnder(dir)).toEqual([]);
      expect(stderr()).toMatch(new RegExp(`${SIGNAL}: shutting down`));
    },
    120_000,
  );
});

/** Until no PostgreSQL of `dir` runs (polls the process table; fails after 30 s). */
async function eventuallyGone(dir: string): Promise<void> {
  await until(() => postgresUnder(dir).length === 0, 30_000, `the PostgreSQL of ${dir} to exit`).catch(() => undefined); // the caller asserts
}
