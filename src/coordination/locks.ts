/**
 * Coordination locks for drivers, by scope (DESIGN decision 5):
 *
 * - `process`: in memory; excludes concurrent steps of one process.
 * - `node`: an exclusive lock file; excludes the processes of one machine
 *   (drivers whose backend is local, like the file driver's copies).
 * - `global`: a PostgreSQL session advisory lock (on the process's shared
 *   lock session when free, see GlobalLocks); excludes every node, and the
 *   server releases it when the holder's connection dies (crash, SIGKILL):
 *   no distributed lock manager.
 *
 * Names are templates, as in Cinder's driver catalogue: `file-{source_id}`.
 * `lock` blocks (up to `timeoutMs`, forever if absent); `tryLock` does not.
 * The machine's state CAS decides what may happen to a resource; these
 * locks only serialise what a driver does to shared backend objects.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import postgres from 'postgres';
import { advisoryLock, advisoryUnlock, keepOrRetake, tryAdvisoryLock } from '../../db/advisory.ts';
import { reconnectDelay, sqlClient } from '../../db/connect.ts';
import { isConnectionError, SQLSTATE, sqlState } from '../../db/sqlstate.ts';

export type LockScope = 'process' | 'node' | 'global';

export interface LockOptions {
  scope: LockScope;
  /** give up after this long (LockTimeout); wait forever when absent */
  timeoutMs?: number;
}

export interface Lock {
  readonly name: string;
  readonly scope: LockScope;
  /**
   * Is the lock still ours? `held` at once for process and node locks. A
   * global lock lives on a database session, and a session that closed
   * (the database restarted or failed over) took the lock with it: then it
   * is taken again if it is free (`retaken`: whoever had it meanwhile may
   * have changed what it guards), `lost` if someone else has it or no
   * database answers. Call it before touching what the lock guards.
   */
  confirm(): Promise<Confirmed>;
  release(): Promise<void>;
}

export type Confirmed = 'held' | 'retaken' | 'lost';

/** A held lock whose release runs once, however often it is called. */
function heldLock(
  name: string,
  scope: LockScope,
  release: () => Promise<void> | void,
  confirm: () => Promise<Confirmed> = () => Promise.resolve('held'),
): Lock {
  let released = false;
  return {
    name,
    scope,
    confirm: () => (released ? Promise.resolve('lost') : confirm()),
    release: async () => {
      if (released) return;
      released = true;
      await release();
    },
  };
}

export class LockTimeout extends Error {
  constructor(
    readonly lockName: string,
    readonly scope: LockScope,
    readonly timeoutMs: number,
  ) {
    super(`${scope} lock ${lockName} not acquired within ${timeoutMs} ms`);
    this.name = 'LockTimeout';
  }
}

/** `file-{source_id}` + {source_id: 'x'} → `file-x`; a missing value is an error, not a silent `{source_id}`. */
export function lockName(template: string, values: Record<string, string>): string {
  return template.replace(/\{(\w+)\}/g, (_m, key: string) => {
    const v = values[key];
    if (v === undefined) throw new Error(`lock name ${template}: no value for {${key}}`);
    return v;
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// --- process scope ---------------------------------------------------------

class ProcessLocks {
  private readonly held = new Map<string, (() => void)[]>();

  async acquire(name: string, timeoutMs: number | undefined, tryOnly: boolean): Promise<Lock | null> {
    const queue = this.held.get(name);
    if (queue) {
      if (tryOnly) return null;
      let wake!: () => void;
      const granted = new Promise<void>((r) => (wake = r));
      queue.push(wake);
      if (timeoutMs === undefined) await granted;
      else {
        const timer = sleep(timeoutMs).then(() => 'timeout' as const);
        if ((await Promise.race([granted.then(() => 'granted' as const), timer])) === 'timeout') {
          const i = queue.indexOf(wake);
          if (i >= 0) {
            queue.splice(i, 1);
            throw new LockTimeout(name, 'process', timeoutMs);
          }
          // Granted while timing out: it is ours.
        }
      }
    } else {
      this.held.set(name, []);
    }
    return heldLock(name, 'process', async () => {
      const waiters = this.held.get(name)!;
      const next = waiters.shift();
      if (next) next();
      else this.held.delete(name);
    });
  }
}

// --- node scope ------------------------------------------------------------

/** This process's start time (Linux), so a reused PID is not mistaken for the holder. */
function startTimeOf(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? '';
  } catch {
    return '';
  }
}

function alive(pid: number, started: string): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  return started === '' || startTimeOf(pid) === '' || startTimeOf(pid) === started;
}

class NodeLocks {
  private readonly me = `${process.pid} ${startTimeOf(process.pid)}`;

  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true });
  }

  private pathOf(name: string): string {
    return join(this.dir, `${name.replace(/[^A-Za-z0-9._-]/g, '_')}.lock`);
  }

  /** Create the lock file exclusively; its content says who holds it. */
  private tryCreate(path: string, token: string): boolean {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, `${this.me} ${token}\n`);
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
  }

  private read(path: string): string | undefined {
    try {
      return readFileSync(path, 'utf8');
    } catch {
      return undefined;
    }
  }

  /**
   * Remove a lock whose holder died. Only one process may break a given
   * dead holder's lock: the one that creates the `.break-<pid>` marker
   * (a breaker that dies leaves a marker, removed once it is 5 s old).
   */
  private breakIfStale(path: string, content: string): void {
    const [pid, started] = content.split(' ');
    if (!pid || alive(Number(pid), started ?? '')) return;
    const marker = `${path}.break-${pid}`;
    try {
      closeSync(openSync(marker, 'wx'));
    } catch {
      try {
        if (Date.now() - statSync(marker).mtimeMs > 5000) unlinkSync(marker);
      } catch {
        /* gone meanwhile */
      }
      return;
    }
    try {
      if (this.read(path) === content) unlinkSync(path);
    } finally {
      unlinkSync(marker);
    }
  }

  async acquire(name: string, timeoutMs: number | undefined, tryOnly: boolean): Promise<Lock | null> {
    const path = this.pathOf(name);
    const token = randomBytes(6).toString('hex');
    const until = timeoutMs === undefined ? Infinity : Date.now() + timeoutMs;
    for (let wait = 2; ; wait = Math.min(wait * 2, 50)) {
      if (this.tryCreate(path, token)) break;
      const content = this.read(path);
      if (content !== undefined) this.breakIfStale(path, content);
      if (tryOnly && content !== undefined && existsSync(path)) return null;
      if (Date.now() >= until) throw new LockTimeout(name, 'node', timeoutMs!);
      await sleep(wait);
    }
    return heldLock(name, 'node', async () => {
      if (this.read(path) === `${this.me} ${token}\n`) unlinkSync(path);
    });
  }
}

// --- global scope ----------------------------------------------------------

/** A lock session: a single-connection client, and whether its connection closed since the lock was taken. */
interface Session {
  readonly sql: postgres.Sql;
  /** the connection closed (and the server let go of any lock it held) since `closed` was last reset */
  closed: boolean;
}

/** The shared session (see GlobalLocks): a single-connection client, and how many times its connection has closed. */
interface SharedSession {
  readonly sql: postgres.Sql;
  /** connections closed so far: a lock taken under another count went with its connection */
  closes: number;
}

/**
 * Global locks live on PostgreSQL sessions. A free lock (the common case:
 * a fence nobody else holds) is taken on the process's **shared session**,
 * one connection that every lock of the process is first tried on and
 * released from: its statements are quick (a try-lock, an unlock), so the
 * steps of a busy node pipeline theirs on it, and a node's connections do
 * not grow with its worker concurrency. A lock another session holds is
 * waited for on a session of its own (a blocking wait would hold up the
 * shared one), reused by the next such wait once released; so is a name
 * this process already holds on the shared session (a session's advisory
 * locks are re-entrant: a second holder there would not be kept out).
 * (Not `sql.reserve()`: in postgres.js 3.4.9 a reserved session whose
 * backend died makes every later query on it wait forever, and a
 * PostgreSQL restart kills them all; a client reconnects.) When the holder
 * process dies, its connections close and the server releases its locks;
 * when the server restarts, every lock is gone with its session, and the
 * holder's unlock is a harmless no-op.
 *
 * A failover is the same for the server side (the new primary never had
 * the lock), but the holder lives on: its fence is gone while its step
 * runs. So a session notes when its connection closes, and `confirm`
 * takes the lock again (on the new primary) before the holder goes on, or
 * says it cannot: fail safe, never a step that believes it is fenced
 * when it is not.
 */
/**
 * After a close notice on the session a lock was taken on: still held (the
 * session is on the backend it was taken on), taken again on the backend it
 * is on now if nobody else holds it, or lost (also when no database
 * answers). `held.backend` follows the lock.
 */
async function recheck(sql: postgres.Sql, name: string, held: { backend: string }): Promise<Confirmed> {
  try {
    const r = await keepOrRetake(sql, name, held.backend);
    if (r.outcome !== 'lost') held.backend = r.backend;
    return r.outcome;
  } catch {
    return 'lost'; // no database to take it from: not ours
  }
}

/** The `global` scope (exported for its tests: they hand it the close notices its sessions get). */
export class GlobalLocks {
  private readonly idle: Session[] = [];
  private shared: SharedSession | undefined;
  /** names held (or being tried) on the shared session by this process */
  private readonly onShared = new Set<string>();

  constructor(
    /** a new single-connection client that calls `onclose` whenever its connection closes */
    private readonly connect: (onclose: () => void) => postgres.Sql,
    /** sessions kept open for the next wait once released */
    private readonly keepIdle: number,
  ) {}

  private sharedSession(): SharedSession {
    if (!this.shared) {
      const shared: { sql?: postgres.Sql; closes: number } = { closes: 0 };
      shared.sql = this.connect(() => shared.closes++);
      this.shared = shared as SharedSession;
    }
    return this.shared;
  }

  private session(): Session {
    // An idle session whose connection closed would fail its next query once: end it, take another.
    for (let reused = this.idle.pop(); reused; reused = this.idle.pop()) {
      if (!reused.closed) return reused;
      void reused.sql.end({ timeout: 1 }).catch(() => {});
    }
    const session: { sql?: postgres.Sql; closed: boolean } = { closed: false };
    session.sql = this.connect(() => (session.closed = true));
    return session as Session;
  }

  private giveBack(session: Session) {
    if (this.idle.length < this.keepIdle) this.idle.push(session);
    else void session.sql.end({ timeout: 1 }).catch(() => {});
  }

  /** Take the lock on session `s`: the backend it is held on, or null when a try-lock found it held. */
  private async take(s: Session, name: string, timeoutMs: number | undefined, tryOnly: boolean): Promise<string | null> {
    // A close from before this lock is not this lock's loss. (One seen late, after the lock is taken, only makes confirm look again: safe.)
    s.closed = false;
    // Free by now (its holder let go while this one queued)? One round trip.
    const tried = await tryAdvisoryLock(s.sql, name);
    if (tried.got) return tried.backend;
    if (tryOnly) return null;
    return advisoryLock(s.sql, name, timeoutMs);
  }

  /** Try the lock on the shared session: a held lock, or null when another session holds it. */
  private async tryShared(name: string): Promise<Lock | null> {
    const shared = this.sharedSession();
    // Marked before the try, so that a second holder in this process waits on a session of its own.
    this.onShared.add(name);
    // Close notices seen before the lock was taken: while none comes after, it is held (no round
    // trip to confirm it). One that comes after only makes confirm ask the server (a notice may be
    // late, for a connection the lock was not taken on: the backend decides, db/advisory.ts).
    let epoch = shared.closes;
    let backend: string | undefined;
    try {
      // Its connection may have died unnoticed (the database restarted or failed over): the client
      // reconnects for the next query, once the close has been handled (a query sent while it is,
      // fails with it: hence a turn of the event loop between tries).
      for (let attempt = 1; ; attempt++) {
        try {
          epoch = shared.closes;
          const tried = await tryAdvisoryLock(shared.sql, name);
          if (tried.got) backend = tried.backend;
          break;
        } catch (err) {
          if (!isConnectionError(err) || attempt === 3) throw err;
          await new Promise((r) => setImmediate(r));
        }
      }
    } finally {
      if (backend === undefined) this.onShared.delete(name);
    }
    if (backend === undefined) return null;
    const held = { backend };
    const confirm = async (): Promise<Confirmed> => {
      if (shared.closes === epoch) return 'held';
      const now = shared.closes;
      const outcome = await recheck(shared.sql, name, held);
      if (outcome !== 'lost') epoch = now;
      return outcome;
    };
    return heldLock(
      name,
      'global',
      async () => {
        // Unmarked as the unlock is sent: a later try of this name on the shared session queues behind it.
        this.onShared.delete(name);
        // Only on the backend it is held on: one that is gone took the lock with it.
        await advisoryUnlock(shared.sql, name, held.backend).catch(() => {});
      },
      confirm,
    );
  }

  async acquire(name: string, timeoutMs: number | undefined, tryOnly: boolean): Promise<Lock | null> {
    if (!this.onShared.has(name)) {
      const lock = await this.tryShared(name);
      if (lock || tryOnly) return lock;
    } else if (tryOnly) return null;
    // Held by another session (or by this process on the shared one): wait for it on a session of its own.
    let s = this.session();
    let got: string | null;
    try {
      try {
        got = await this.take(s, name, timeoutMs, tryOnly);
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        // An idle session whose connection died unnoticed (the database restarted or failed over): once more, on a new one.
        void s.sql.end({ timeout: 1 }).catch(() => {});
        s = this.session();
        got = await this.take(s, name, timeoutMs, tryOnly);
      }
    } catch (err) {
      this.giveBack(s);
      if (sqlState(err) === SQLSTATE.LOCK_NOT_AVAILABLE) throw new LockTimeout(name, 'global', timeoutMs ?? 0);
      throw err;
    }
    if (!got) {
      this.giveBack(s);
      return null;
    }
    const session = s.sql;
    const held = { backend: got };
    const confirm = async (): Promise<Confirmed> => {
      if (!s.closed) return 'held';
      s.closed = false;
      const outcome = await recheck(session, name, held);
      if (outcome === 'lost') s.closed = true;
      return outcome;
    };
    return heldLock(
      name,
      'global',
      async () => {
        try {
          await advisoryUnlock(session, name, held.backend);
          this.giveBack(s);
        } catch {
          // The session is gone (and the lock with it): do not reuse it.
          void session.end({ timeout: 1 }).catch(() => {});
        }
      },
      confirm,
    );
  }

  async close(): Promise<void> {
    const shared = this.shared;
    this.shared = undefined;
    await Promise.all([...this.idle.splice(0).map((s) => s.sql.end({ timeout: 1 })), shared?.sql.end({ timeout: 1 })]);
  }
}

export interface CoordinationOptions {
  /** directory of node-scope lock files */
  dir: string;
  /** database for global-scope locks (one shared session, and one per wait for a lock held elsewhere) */
  databaseUrl?: string;
  /** sessions of their own kept open once a wait for a held lock is over, for the next wait (a node: VOLSTATE_LOCK_IDLE_SESSIONS, 2; here 4) */
  idleSessions?: number;
}

export class Coordination {
  private readonly process = new ProcessLocks();
  private readonly node: NodeLocks;
  private readonly global: GlobalLocks | undefined;

  constructor(opts: CoordinationOptions) {
    this.node = new NodeLocks(opts.dir);
    const url = opts.databaseUrl;
    this.global = url
      ? new GlobalLocks(
          // No idle_timeout: a session holding a lock through a long step is idle too, and closing it would let the lock go.
          (onclose) =>
            sqlClient(url, {
              max: 1,
              onnotice: () => {},
              onclose,
              backoff: reconnectDelay,
              connection: { application_name: 'volstate-lock' },
            }),
          opts.idleSessions ?? 4,
        )
      : undefined;
  }

  private scope(scope: LockScope) {
    if (scope === 'process') return this.process;
    if (scope === 'node') return this.node;
    if (!this.global) throw new Error('global locks need a database (Coordination({ sql }))');
    return this.global;
  }

  async lock(name: string, opts: LockOptions): Promise<Lock> {
    return (await this.scope(opts.scope).acquire(name, opts.timeoutMs, false))!;
  }

  tryLock(name: string, opts: Omit<LockOptions, 'timeoutMs'>): Promise<Lock | null> {
    return this.scope(opts.scope).acquire(name, undefined, true);
  }

  async close(): Promise<void> {
    await this.global?.close();
  }

  /** Run `fn` holding the lock. */
  async with<T>(name: string, opts: LockOptions, fn: () => Promise<T>): Promise<T> {
    const lock = await this.lock(name, opts);
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }
}
