/**
 * postgres.js 3.4.9 on connections that die, as guarded by
 * scripts/patch-postgres.mjs (postinstall): a deferred write on a closed
 * socket crashed the process (porsager/postgres#1154, #1208), seen when
 * PostgreSQL restarted under load; and a connection closed in the middle
 * of a result kept its row counter, so the next query's rows came after
 * holes (an existing volume answered 404), seen when backends were
 * terminated under load.
 */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { connect as tcpConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { connect, sqlClient, tcpUrl, type Sql } from '../../db/connect.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { until } from '../helpers/wait.ts';

const db = useTestDatabase();

/**
 * The rows of `SELECT 1 AS one` on a pool whose connection died: the first
 * tries may fail (the connection is found dead: ECONNRESET, 57P01), then
 * the client reconnects. The last failure if it never answers.
 */
async function nextAnswer(sql: Sql): Promise<unknown> {
  let result: unknown;
  for (let attempt = 0; attempt < 4 && !Array.isArray(result); attempt++) {
    result = await sql`SELECT 1 AS one`.then(
      (r) => [...r],
      (e: Error) => e,
    );
  }
  return result;
}

describe('postgres.js on a reserved session whose backend died', () => {
  it('fails the query catchably, survives, and carries on', { timeout: 20_000 }, async () => {
    const sql = connect(db.url, { max: 1 });
    try {
      const [row] = await sql`SELECT pg_backend_pid() AS pid`;
      const pid = row!.pid as number;
      await db.sql`SELECT pg_terminate_backend(${pid})`;
      // Nothing may throw out of band (that ends this process) or hang (the test's timeout).
      expect(await nextAnswer(sql)).toEqual([{ one: 1 }]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

describe('postgres.js on a connection that dies in the middle of a result', () => {
  it('gives the next query its own rows, from the first', { timeout: 20_000 }, async () => {
    const sql = connect(db.url, { max: 1, name: 'volstate-test-midresult' });
    try {
      const [row] = await sql`SELECT pg_backend_pid() AS pid`;
      const pid = row!.pid as number;
      // Rows of 9 kB, each sent on its own (the server flushes its 8 kB
      // buffer), one every 20 ms: the backend dies with some received.
      // Each row advances a sequence, which another session can read at
      // once (sequences are not transactional): the backend is ended once
      // ten rows were made, an event rather than a delay.
      const made = `midresult_${pid}`;
      await db.sql.unsafe(`CREATE SEQUENCE ${made}`);
      const long = sql`SELECT g, repeat('x', 9000) AS pad, pg_sleep(0.02), nextval(${made}) FROM generate_series(1, 200) g`.then(
        () => 'finished',
        (e: { code?: string }) => e.code,
      );
      await until(
        async () => Number((await db.sql.unsafe(`SELECT last_value, is_called FROM ${made}`))[0]!.last_value) >= 10,
        15_000,
        'ten rows to be made',
      );
      await db.sql`SELECT pg_terminate_backend(${pid})`;
      expect(await long).not.toBe('finished');
      expect(await nextAnswer(sql)).toEqual([{ one: 1 }]);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

describe('postgres.js on a connection closed while a write waits for its turn', () => {
  it('sends the next connection its startup message (it hung until connect_timeout)', { timeout: 30_000 }, async () => {
    // postgres.js defers a small write with setImmediate. A connection that
    // closes before the immediate runs cancels it; 3.4.9 cancelled it
    // without forgetting it (nextWriteTimer stayed set, its bytes queued),
    // so no later write on that connection was ever scheduled: the next
    // connection never sent its startup message and hung until
    // connect_timeout. The server waits for that startup message as long:
    // it is what held the embedded PostgreSQL's fast shutdown for 10 s
    // (connect_timeout) in the harness's pg-restart runs. Here the close
    // comes in the same turn as the write, on demand: the test makes the
    // sockets (postgres.js's `socket` option) and destroys the one in use
    // right after sending a query, five times on one connection.
    const target = new URL(tcpUrl(db.url));
    const sockets: Socket[] = [];
    // `socket` is a postgres.js option its types leave out: passed as a variable, not a literal.
    const options = {
      max: 1,
      connect_timeout: 3,
      onnotice: () => {},
      socket: () =>
        new Promise((resolve, reject) => {
          const s = tcpConnect(Number(target.port), target.hostname, () => resolve(s)).once('error', reject);
          sockets.push(s);
        }),
    };
    const sql = sqlClient(target.toString(), options);
    try {
      expect([...(await sql`SELECT 1 AS one`)]).toEqual([{ one: 1 }]);
      const ROUNDS = 5;
      for (let round = 1; round <= ROUNDS; round++) {
        // From an immediate (the check phase): the query's own deferred write
        // runs in the next turn of the loop, the socket's 'close' in this one's
        // close phase, before it.
        const cut = await new Promise<Promise<unknown>>((resolve) =>
          setImmediate(() => {
            resolve(
              sql`SELECT 2 AS two`.then(
                (r) => [...r],
                (e: { code?: string }) => e.code,
              ),
            );
            sockets.at(-1)!.destroy();
          }),
        );
        expect(await cut, `round ${round}`).toBe('CONNECTION_CLOSED');
        const next = await sql`SELECT ${round}::int AS round`.then(
          (r) => [...r],
          (e: { code?: string }) => e.code,
        );
        expect(next, `round ${round}`).toEqual([{ round }]);
      }
      expect(sockets.length).toBe(ROUNDS + 1);
    } finally {
      await sql.end({ timeout: 1 });
    }
  });
});

/** The pool's Queue (postgres.js src/queue.js, as installed), driven as the pool drives its busy queue. */
async function busyQueueScans(rounds: number): Promise<{ perRound: number; longest: number; order: unknown[] }> {
  const file = join(dirname(fileURLToPath(import.meta.resolve('postgres'))), 'queue.js');
  const { default: Queue } = (await import(pathToFileURL(file).href)) as {
    default: () => { length: number; push(x: unknown): unknown; shift(): unknown; remove(x: unknown): unknown };
  };
  const q = Queue();
  for (const c of ['a', 'b', 'c', 'd']) q.push(c);
  // What every query on a busy pool does (index.js): `go(busy.shift(), query)`, then `move(c, busy)`,
  // which is `c.queue.remove(c)` (a miss: it was shifted out) and `busy.push(c)`. The items indexOf
  // looked at, and the longest array it pushed onto, are counted while only the queue runs.
  let scanned = 0;
  let longest = 0;
  const indexOf = Array.prototype.indexOf;
  const push = Array.prototype.push;
  Array.prototype.push = function (this: unknown[], ...xs: unknown[]) {
    longest = Math.max(longest, this.length);
    return push.apply(this, xs);
  };
  Array.prototype.indexOf = function (this: unknown[], x: unknown, from?: number) {
    const at = indexOf.call(this, x, from);
    scanned += (at === -1 ? this.length : at + 1) - Math.max(0, from ?? 0);
    return at;
  };
  try {
    for (let i = 0; i < rounds; i++) {
      const c = q.shift();
      q.remove(c);
      q.push(c);
    }
  } finally {
    Array.prototype.indexOf = indexOf;
    Array.prototype.push = push;
  }
  const order: unknown[] = [];
  while (q.length > 0) order.push(q.shift());
  return { perRound: scanned / rounds, longest, order };
}

describe("postgres.js's pool queues under a load that never lets them drain (guards 9 and 10)", () => {
  it('cost the same per query after 1,000 queries and after 100,000, hold no more than a few hundred slots, and keep every connection in order', async () => {
    const early = await busyQueueScans(1_000);
    const late = await busyQueueScans(100_000);
    // Unguarded, `remove` scanned the whole array, which grew by one per query: about
    // rounds / 2 items a query on average (500 and 50,000 here). Guarded: the live part only.
    expect(early.perRound).toBeLessThanOrEqual(4);
    expect(late.perRound).toBeLessThanOrEqual(4);
    // Unguarded, the array held a slot for every query since the queue last drained (100,000 here).
    expect(late.longest).toBeLessThan(200);
    // 100,000 rounds of four: the queue is back where it started.
    expect(late.order).toEqual(['a', 'b', 'c', 'd']);
    expect(early.order).toEqual(['a', 'b', 'c', 'd']);
  });
});

describe('the start-time check of the patch', () => {
  it('finds every guard in the installed postgres.js, and none in an unpatched copy; the server refuses that with how to fix it', async () => {
    const { GUARDS } = await import('../../scripts/postgres-guards.mjs');
    const { missingPostgresGuards, UnpatchedPostgres } = await import('../../db/postgres-guards.ts');
    expect(missingPostgresGuards()).toBe(0);
    const installed = dirname(fileURLToPath(import.meta.resolve('postgres')));
    const copy = mkdtempSync(join(tmpdir(), 'volstate-pg-'));
    for (const file of new Set(GUARDS.map(([f]) => f))) {
      let unpatched = readFileSync(join(installed, file), 'utf8');
      for (const [, anchor, guard] of GUARDS.filter(([f]) => f === file)) unpatched = unpatched.replace(guard, anchor);
      writeFileSync(join(copy, file), unpatched);
    }
    expect(missingPostgresGuards(copy)).toBe(GUARDS.length);
    expect(new UnpatchedPostgres(GUARDS.length).message).toMatch(
      new RegExp(`missing ${GUARDS.length} of the ${GUARDS.length} guards.*Run \`node scripts/patch-postgres.mjs\``),
    );
  });
});
