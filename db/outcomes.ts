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
 * (epoch ms); then the last connection error is thrown.
 */
export async function whenBack<T>(read: () => Promise<T>, until: number, everyMs = 100): Promise<T> {
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (!isConnectionError(err) || Date.now() + everyMs > until) throw err;
      await new Promise((r) => setTimeout(r, everyMs));
    }
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
