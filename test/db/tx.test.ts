/**
 * db/tx.ts: a multi-row transaction locks its rows in one order first, and
 * the lock goes out with the transaction's first statements (pipelined).
 * When that lock is a deadlock's victim, the transaction is aborted and
 * what was sent after the lock fails only for that: the deadlock is what
 * must be answered, and retried. A forced deadlock on real connections.
 */
import { randomUUID } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { transaction } from '../../db/tx.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { eventually } from '../helpers/wait.ts';

// three sessions at once: the other transaction, ours, and the test's own reads
const db = useTestDatabase({ max: 4 });

describe('transaction', () => {
  it('retries when its pipelined lock is a deadlock victim, not failing on what was sent after it', async () => {
    const [low, high] = [randomUUID(), randomUUID()].sort() as [string, string];
    for (const id of [low, high])
      await db.sql`INSERT INTO resource_states (resource_type, resource_id, state) VALUES ('volume', ${id}, 'available')`;
    const deadlocks = async () =>
      (await db.sql<{ n: number }[]>`SELECT deadlocks::int AS n FROM pg_stat_database WHERE datname = current_database()`)[0]!.n;
    const before = await deadlocks();
    const waiting = () =>
      db.sql<{ n: number }[]>`
        SELECT count(*)::int AS n FROM pg_locks l JOIN pg_stat_activity s ON s.pid = l.pid
        WHERE NOT l.granted AND s.datname = current_database()`.then(([r]) => r!.n);
    // The other order: `high` first, then (once the transaction below waits for `high`) `low`.
    // It waits 10 s before looking for a deadlock, the transaction below 1 s (PostgreSQL's
    // default): so the transaction below is the one PostgreSQL aborts.
    let releaseOther!: () => void;
    const otherMayGo = new Promise<void>((r) => (releaseOther = r));
    let otherHolds!: () => void;
    const otherHoldsHigh = new Promise<void>((r) => (otherHolds = r));
    const other = db.sql.begin(async (tx) => {
      await tx`SET LOCAL deadlock_timeout = '10s'`;
      await tx`SELECT 1 FROM resource_states WHERE resource_type = 'volume' AND resource_id = ${high} FOR NO KEY UPDATE`;
      otherHolds();
      await otherMayGo;
      await tx`SELECT 1 FROM resource_states WHERE resource_type = 'volume' AND resource_id = ${low} FOR NO KEY UPDATE`;
    });
    await otherHoldsHigh;
    let attempts = 0;
    const ours = transaction(
      db.sql,
      {
        rows: [
          { type: 'volume', id: high },
          { type: 'volume', id: low },
        ],
      },
      async (tx) => {
        attempts++;
        // Sent right behind the lock: in an aborted transaction this fails with 25P02.
        const [row] = await tx<{ state: string }[]>`
        UPDATE resource_states SET version = version + 1 WHERE resource_type = 'volume' AND resource_id = ${low} RETURNING state`;
        return row!.state;
      },
    );
    await eventually(async () => ((await waiting()) > 0 ? true : undefined), 10_000, 'our lock waiting for the other transaction');
    releaseOther();
    expect(await ours).toBe('available');
    await other;
    expect(await deadlocks()).toBe(before + 1);
    // The first attempt ran (pipelined behind the lock) and was aborted with it; the second committed.
    expect(attempts).toBe(2);
  });
});
