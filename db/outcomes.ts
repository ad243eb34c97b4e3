/**
 * What did a request change? Every state change writes its history row,
 * with the request id, in the same statement (db/cas.ts), so the history
 * answers it exactly: the rows are there if and only if the request's
 * transaction committed.
 *
 * Asked when a request's database connection was lost mid-change: the
 * server may have committed just before the connection went, and only a
 * read on a new connection can tell (see src/api/changes.ts).
 */
import type { Sql } from './connect.ts';
import { isConnectionError } from './sqlstate.ts';

export interface Change {
  resource_type: string;
  resource_id: string;
  event: string;
}

/**
 * Run `read` (idempotent) until it gets through, asking again every
 * `everyMs` while the connection is lost, until the `until` deadline
 * (epoch ms); then the last connection error is thrown. One attempt that
 * hangs (a query handed to a connection that is still being set up when
 * its backend dies waits for the connect timeout) is given up after
 * `attemptMs` and counted as a lost connection; it finishes, or fails, on
 * its own.
 */
export async function whenBack<T>(read: () => Promise<T>, until: number, everyMs = 100, attemptMs = 1000): Promise<T> {
  for (;;) {
    try {
      return await withinMs(read(), attemptMs);
    } catch (err) {
      if (!isConnectionError(err) || Date.now() + everyMs > until) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}

async function withinMs<T>(attempt: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`no answer within ${ms} ms`), { code: 'CONNECT_TIMEOUT' })), ms);
  });
  attempt.catch(() => undefined); // given up on: its own failure interests nobody
  try {
    return await Promise.race([attempt, late]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * The changes `requestId` committed, oldest first (`[]`: none), asking
 * again while the database does not answer, until `until`; `undefined`
 * when it did not answer in time (the outcome is still unknown).
 */
export async function changesOf(sql: Sql, requestId: string, until: number): Promise<Change[] | undefined> {
  try {
    return await whenBack(
      () => sql<Change[]>`
        SELECT resource_type, resource_id, event FROM state_transitions
        WHERE request_id = ${requestId} ORDER BY id`,
      until,
    );
  } catch (err) {
    if (isConnectionError(err)) return undefined;
    throw err;
  }
}
