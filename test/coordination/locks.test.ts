/**
 * Coordination locks: mutual exclusion within a process, across processes
 * for the `node` and `global` scopes (children incrementing one counter
 * file: no lost update, no interleaved critical sections), timeouts and
 * try-locks, and a `global` lock released by the server when its holder
 * is SIGKILLed (a `node` lock's stale file is broken the same way).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Coordination, GlobalLocks, LockTimeout, lockName } from '../../src/coordination/locks.ts';
import { sqlClient } from '../../db/connect.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { until } from '../helpers/wait.ts';

const db = useTestDatabase();
const CHILD = resolve(import.meta.dirname, '../helpers/lock-child.ts');
const dir = () => mkdtempSync(join(tmpdir(), 'volstate-locks-'));

function child(args: string[]) {
  return spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
}

function exited(p: ReturnType<typeof child>): Promise<number | null> {
  return new Promise((r) => p.on('exit', (code) => r(code)));
}

/** Critical sections in the journal never overlap: start, end, start, end ... each pair by one process. */
function checkJournal(path: string, expected: number) {
  const lines = readFileSync(path, 'utf8').trim().split('\n');
  expect(lines).toHaveLength(expected * 2);
  for (let i = 0; i < lines.length; i += 2) {
    const [s, sp] = lines[i]!.split(' ');
    const [e, ep] = lines[i + 1]!.split(' ');
    expect([s, e, sp === ep]).toEqual(['start', 'end', true]);
  }
}

describe('lock names', () => {
  it('fill templates, and refuse a missing value', () => {
    expect(lockName('file-{source_id}', { source_id: 'v1' })).toBe('file-v1');
    expect(() => lockName('file-{source_id}', {})).toThrow(/no value for \{source_id\}/);
  });
});

describe('process scope', () => {
  it('excludes concurrent holders, times out, and try-locks', async () => {
    const c = new Coordination({ dir: dir() });
    let inside = 0;
    let most = 0;
    await Promise.all(
      Array.from({ length: 20 }, () =>
        c.with('p', { scope: 'process' }, async () => {
          most = Math.max(most, ++inside);
          await new Promise((r) => setTimeout(r, 1));
          inside--;
        }),
      ),
    );
    expect(most).toBe(1);
    const held = await c.lock('q', { scope: 'process' });
    expect(await c.tryLock('q', { scope: 'process' })).toBeNull();
    await expect(c.lock('q', { scope: 'process', timeoutMs: 30 })).rejects.toBeInstanceOf(LockTimeout);
    await held.release();
    const again = await c.tryLock('q', { scope: 'process' });
    expect(again).not.toBeNull();
    await again!.release();
  });
});

for (const scope of ['node', 'global'] as const) {
  describe(`${scope} scope`, () => {
    it('excludes four processes incrementing one counter', async () => {
      const d = dir();
      const counter = join(d, 'counter');
      const journal = join(d, 'journal');
      writeFileSync(counter, '0');
      writeFileSync(journal, '');
      const url = scope === 'global' ? db.url : '-';
      const children = Array.from({ length: 4 }, () => child(['count', scope, 'counter-lock', d, url, '25', counter, journal]));
      expect(await Promise.all(children.map(exited))).toEqual([0, 0, 0, 0]);
      expect(Number(readFileSync(counter, 'utf8'))).toBe(100);
      checkJournal(journal, 100);
    });

    it('is given back when its holder is SIGKILLed', async () => {
      const d = dir();
      const url = scope === 'global' ? db.url : '-';
      const holder = child(['hold', scope, 'kill-me', d, url]);
      await new Promise<void>((r) => holder.stdout.on('data', (b: Buffer) => b.toString().includes('locked') && r()));
      const c = new Coordination({ dir: d, databaseUrl: db.url });
      expect(await c.tryLock('kill-me', { scope })).toBeNull();
      await expect(c.lock('kill-me', { scope, timeoutMs: 100 })).rejects.toBeInstanceOf(LockTimeout);
      holder.kill('SIGKILL');
      await exited(holder);
      const lock = await c.lock('kill-me', { scope, timeoutMs: 5000 });
      expect(lock.scope).toBe(scope);
      await lock.release();
    });
  });
}

describe('global locks of one process', () => {
  /** The advisory locks held in this database, and by how many sessions. */
  const held = async () =>
    (
      await db.sql<{ locks: number; sessions: number }[]>`
        SELECT count(*)::int AS locks, count(DISTINCT pid)::int AS sessions FROM pg_locks
        WHERE locktype = 'advisory' AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`
    )[0]!;

  it('share one session while free, so a node holds one connection for all its fences, not one per step', async () => {
    const c = new Coordination({ dir: dir(), databaseUrl: db.url });
    try {
      const locks = await Promise.all(Array.from({ length: 32 }, (_, i) => c.lock(`fence-${i}`, { scope: 'global', timeoutMs: 1000 })));
      expect(await held()).toEqual({ locks: 32, sessions: 1 });
      // Each is held for real: another process's try finds every one taken.
      const other = new Coordination({ dir: dir(), databaseUrl: db.url });
      try {
        for (let i = 0; i < 32; i += 7) expect(await other.tryLock(`fence-${i}`, { scope: 'global' })).toBeNull();
        await Promise.all(locks.map((l) => l.release()));
        for (let i = 0; i < 32; i += 7) {
          const mine = await other.tryLock(`fence-${i}`, { scope: 'global' });
          expect(mine).not.toBeNull();
          await mine!.release();
        }
      } finally {
        await other.close();
      }
    } finally {
      await c.close();
    }
  });

  it('keep a second holder of a name in the same process out (advisory locks are re-entrant per session)', async () => {
    const c = new Coordination({ dir: dir(), databaseUrl: db.url });
    try {
      const first = await c.lock('twice', { scope: 'global' });
      expect(await c.tryLock('twice', { scope: 'global' })).toBeNull();
      await expect(c.lock('twice', { scope: 'global', timeoutMs: 100 })).rejects.toBeInstanceOf(LockTimeout);
      // A waiter gets it once the first lets go, and then the first's name is free on the shared session again.
      const waiting = c.lock('twice', { scope: 'global', timeoutMs: 5000 });
      let second: Awaited<typeof waiting> | undefined;
      void waiting.then((l) => (second = l));
      // The waiter is queued on the server (its own session), not let in beside the first.
      for (;;) {
        const [w] = await db.sql<{ n: number }[]>`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`;
        if (w!.n > 0) break;
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(second).toBeUndefined();
      await first.release();
      second = await waiting;
      expect(await c.tryLock('twice', { scope: 'global' })).toBeNull();
      await second.release();
      const third = await c.tryLock('twice', { scope: 'global' });
      expect(third).not.toBeNull();
      await third!.release();
    } finally {
      await c.close();
    }
  });
});

describe('a global lock whose session is lost (the database restarted or failed over)', () => {
  /** Terminate the lock sessions of this test's database, as a failover ends every session of the old primary. */
  const terminateLockSessions = () =>
    db.sql`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = 'volstate-lock' AND datname = current_database()`;

  it('is confirmed while held, taken again when it is free, and lost when another holder has it', { timeout: 20_000 }, async () => {
    const mine = new Coordination({ dir: dir(), databaseUrl: db.url });
    const other = new Coordination({ dir: dir(), databaseUrl: db.url });
    try {
      const lock = await mine.lock('fence-me', { scope: 'global' });
      expect(await lock.confirm()).toBe('held');

      // Lost with its session; nobody else wants it: taken again on the next session.
      await terminateLockSessions();
      let first: string | undefined;
      for (const until = Date.now() + 10_000; Date.now() < until && (first === undefined || first === 'held');) {
        first = await lock.confirm();
        if (first === 'held') await new Promise((r) => setTimeout(r, 20));
      }
      expect(first).toBe('retaken');
      expect(await other.tryLock('fence-me', { scope: 'global' })).toBeNull(); // ours again, for real
      expect(await lock.confirm()).toBe('held');

      // Lost again, and another holder takes it before we look: not ours, and never believed to be.
      await terminateLockSessions();
      const theirs = await other.lock('fence-me', { scope: 'global', timeoutMs: 5000 });
      let second: string | undefined;
      for (const until = Date.now() + 10_000; Date.now() < until && (second === undefined || second === 'held');) {
        second = await lock.confirm();
        if (second === 'held') await new Promise((r) => setTimeout(r, 20));
      }
      expect(second).toBe('lost');
      expect(await lock.confirm()).toBe('lost');
      await theirs.release();
      await lock.release();
    } finally {
      await mine.close();
      await other.close();
    }
  });

  it(
    'is neither taken twice nor kept when a close notice comes late, after it was taken on the next backend',
    { timeout: 20_000 },
    async () => {
      // Every close notice the sessions could get, handed to the test: sent when no connection closed,
      // each is what a late notice looks like (the notice of an old connection, after the lock was
      // taken on the new one). Seen under a PostgreSQL restart: fences stayed held for ever on a live
      // session, and their rows were handed back by every other node, fenced out, for ever.
      const notices: (() => void)[] = [];
      const locks = new GlobalLocks((onclose) => {
        notices.push(onclose);
        return sqlClient(db.url, { max: 1, onnotice: () => {}, onclose, connection: { application_name: 'volstate-lock' } });
      }, 0);
      const other = new Coordination({ dir: dir(), databaseUrl: db.url });
      const free = async (name: string) => {
        const theirs = await other.tryLock(name, { scope: 'global' });
        await theirs?.release();
        return theirs !== null;
      };
      try {
        // On the shared session.
        const shared = (await locks.acquire('late-shared', undefined, false))!;
        for (const notice of notices) notice();
        expect(await shared.confirm()).toBe('held');
        await shared.release();
        expect(await free('late-shared')).toBe(true);

        // On a session of its own (another holder had it first).
        const first = await other.lock('late-own', { scope: 'global' });
        const waiting = locks.acquire('late-own', 10_000, false);
        // Let it go once the acquire waits for it on a session of its own.
        await until(
          async () => (await db.sql`SELECT count(*)::int AS n FROM pg_locks WHERE locktype = 'advisory' AND NOT granted`)[0]!.n === 1,
        );
        await first.release();
        const own = (await waiting)!;
        for (const notice of notices) notice();
        expect(await own.confirm()).toBe('held');
        await own.release();
        expect(await free('late-own')).toBe(true);
      } finally {
        await locks.close();
        await other.close();
      }
    },
  );
});
