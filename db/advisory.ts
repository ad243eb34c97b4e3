/**
 * PostgreSQL session advisory locks by name (src/coordination/locks.ts
 * holds the sessions they live on): the names are hashed to the 64-bit
 * keys PostgreSQL locks.
 */
import type postgres from 'postgres';

/**
 * The server backend a statement ran on, `pid@postmaster start`: a lock
 * lives and dies with it. A client's notice that its connection closed may
 * come late, after the next statement already ran on a new backend; so
 * whether a lock is still held, and where to let it go, is decided by the
 * backend, never by counting close notices (a count taken before a late
 * notice once made a fence look lost: it was taken a second time, advisory
 * locks being re-entrant, or its unlock skipped, and it stayed held for
 * ever on a live session).
 */
const BACKEND = `pg_backend_pid() || '@' || pg_postmaster_start_time()`;

/** Take the lock if it is free: whether taken, and on which backend. */
export async function tryAdvisoryLock(session: postgres.Sql, name: string): Promise<{ got: boolean; backend: string }> {
  const [row] = await session.unsafe<{ got: boolean; backend: string }[]>(
    `SELECT pg_try_advisory_lock(hashtextextended($1, 0)) AS got, ${BACKEND} AS backend`,
    [name],
    { prepare: true },
  );
  return row!;
}

/**
 * Still held, if this session is still on `backend` (`held`); otherwise
 * taken again on the backend it is on now if free (`retaken`), else `lost`.
 * One statement, and never a second hold of a lock this backend has.
 */
export async function keepOrRetake(
  session: postgres.Sql,
  name: string,
  backend: string,
): Promise<{ outcome: 'held' | 'retaken' | 'lost'; backend: string }> {
  const [row] = await session.unsafe<{ same: boolean; got: boolean; backend: string }[]>(
    `SELECT b.me = $2 AS same, CASE WHEN b.me = $2 THEN true ELSE pg_try_advisory_lock(hashtextextended($1, 0)) END AS got, b.me AS backend
     FROM (SELECT ${BACKEND} AS me) b`,
    [name, backend],
    { prepare: true },
  );
  const r = row!;
  return { outcome: r.same ? 'held' : r.got ? 'retaken' : 'lost', backend: r.backend };
}

/**
 * Wait for the lock, at most `timeoutMs` (undefined: for ever); a timeout
 * fails with SQLSTATE 55P03 (lock_not_available).
 */
export async function advisoryLock(session: postgres.Sql, name: string, timeoutMs: number | undefined): Promise<string> {
  // One transaction, so the timeout and the lock share the session's transaction-free state.
  // eslint-disable-next-line no-restricted-syntax -- changes no row: only SET LOCAL and the advisory lock, on a session of its own
  return session.begin(async (tx) => {
    await tx.unsafe(`SET LOCAL lock_timeout = ${timeoutMs === undefined ? 0 : Math.max(1, Math.round(timeoutMs))}`);
    const [row] = await tx.unsafe<{ backend: string }[]>(`SELECT pg_advisory_lock(hashtextextended($1, 0)), ${BACKEND} AS backend`, [name]);
    return row!.backend;
  });
}

/** Let the lock go if this session is still on `backend`; a lock of another backend went with it. */
export async function advisoryUnlock(session: postgres.Sql, name: string, backend: string): Promise<void> {
  await session.unsafe(
    `SELECT pg_advisory_unlock(hashtextextended($1, 0)) FROM (SELECT ${BACKEND} AS me) b WHERE b.me = $2`,
    [name, backend],
    {
      prepare: true,
    },
  );
}
