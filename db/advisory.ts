/**
 * PostgreSQL session advisory locks by name (src/coordination/locks.ts
 * holds the sessions they live on): the names are hashed to the 64-bit
 * keys PostgreSQL locks.
 */
import type postgres from 'postgres';

/** Take the lock if it is free: true when taken. */
export async function tryAdvisoryLock(session: postgres.Sql, name: string): Promise<boolean> {
  const [row] = await session<{ got: boolean }[]>`SELECT pg_try_advisory_lock(hashtextextended(${name}, 0)) AS got`;
  return row!.got;
}

/**
 * Wait for the lock, at most `timeoutMs` (undefined: for ever); a timeout
 * fails with SQLSTATE 55P03 (lock_not_available).
 */
export async function advisoryLock(session: postgres.Sql, name: string, timeoutMs: number | undefined): Promise<void> {
  // One transaction, so the timeout and the lock share the session's transaction-free state.
  // eslint-disable-next-line no-restricted-syntax -- changes no row: only SET LOCAL and the advisory lock, on a session of its own
  await session.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL lock_timeout = ${timeoutMs === undefined ? 0 : Math.max(1, Math.round(timeoutMs))}`);
    await tx`SELECT pg_advisory_lock(hashtextextended(${name}, 0))`;
  });
}

export async function advisoryUnlock(session: postgres.Sql, name: string): Promise<void> {
  await session`SELECT pg_advisory_unlock(hashtextextended(${name}, 0))`;
}
