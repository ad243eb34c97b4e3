/**
 * A change whose database connection was lost mid-way has an outcome this
 * process does not know: the server may have committed just before the
 * connection went. Every change writes its history rows with the request
 * id in the same statement, so once the database answers again one read
 * tells (db/outcomes.ts):
 *
 * - nothing committed → the change is tried again, now that the database
 *   answers, when the lost session is known to be over (the server ended
 *   it or closed its socket: a restart, a failover, a killed backend);
 *   otherwise, or once the patience is spent, 503 "nothing was changed";
 * - committed → the request succeeded, and `committed` rebuilds from the
 *   changed resources what the change would have returned; committed but
 *   the answer could not be read back in the patience → 503 naming what
 *   was changed;
 * - still unknown after the patience (the database stayed away) → 503
 *   saying so.
 *
 * A client never sees a 5xx for a change that was made, as long as the
 * database comes back within the patience.
 *
 * Left open: when only the network between node and database breaks, a
 * statement the server is still running may commit after the read said
 * "nothing" (the server learns its client is gone only when it next talks
 * to it). A restart or crash of the server, or a killed backend, ends the
 * transaction first, so the read is exact there.
 */
import type { Sql } from '../../db/connect.ts';
import { changesOf, whenBack, type Change } from '../../db/outcomes.ts';
import { isConnectionError, neverConnected, sessionEnded } from '../../db/sqlstate.ts';
import { ApiError } from '../errors.ts';

export type { Change };

/**
 * Whether an error says the database connection was lost (or never made):
 * the database is unavailable, not the request wrong.
 */
export { isConnectionError };

/** Rebuilds a change's answer from what it changed, after a lost connection that committed. */
export type Committed<T> = (changes: Change[]) => Promise<T>;

/** Where the outcome's steps are logged (a request's logger). */
export interface OutcomeLog {
  warn(obj: object, msg: string): void;
}

export class ChangeOutcomes {
  constructor(
    private readonly sql: Sql,
    /** how long a request whose connection was lost waits for the database to tell what it did */
    readonly inDoubtMs: number,
  ) {}

  /**
   * Run `attempt` for request `requestId`, answering what it answers, or
   * after a lost connection what the history says it did (see above);
   * without `committed`, a change that committed answers undefined.
   */
  async run<T>(requestId: string, attempt: () => Promise<T>, committed: Committed<T> | undefined, log: OutcomeLog): Promise<T | undefined> {
    const { inDoubtMs } = this;
    let until: number | undefined;
    for (let tries = 1; ; tries++) {
      try {
        return await attempt();
      } catch (err) {
        if (!isConnectionError(err)) throw err;
        until ??= Date.now() + inDoubtMs;
        if (neverConnected(err)) {
          // This attempt reached no server (it is restarting, or failing over): nothing of it was
          // sent, so there is nothing to ask the history; try again shortly while the patience
          // lasts. (Until 2026-12-05 a connect ENOENT answered 500, then 503 after the history read.)
          if (Date.now() < until) {
            if (tries === 1) log.warn({ err }, 'no database to reach; trying again until it is back');
            await new Promise((resolve) => setTimeout(resolve, Math.min(50 * tries, 500)));
            continue;
          }
          throw new ApiError(
            'ServiceUnavailable',
            { reason: 'the database could not be reached; nothing was changed' },
            { headers: { 'Retry-After': '2' } },
          );
        }
        const changes = await changesOf(this.sql, requestId, until);
        if (changes === undefined) {
          log.warn({ err }, 'connection lost mid-change; the database did not come back to tell what it did');
          throw new ApiError('OutcomeUnknown', { seconds: Math.round(inDoubtMs / 1000) }, { headers: { 'Retry-After': '5' } });
        }
        if (changes.length === 0) {
          // Nothing was changed, and the database answers again (a restart, a
          // failover): the change is made now, as if the request came now,
          // while the patience lasts. Only when the lost session is known to
          // be over (sessionEnded): a session cut off by the network alone
          // could still commit the first attempt after the read.
          if (sessionEnded(err) && Date.now() < until) {
            log.warn({ err, tries }, 'connection lost mid-change; nothing was changed; trying again');
            continue;
          }
          log.warn({ err }, 'connection lost mid-change; nothing was changed');
          throw new ApiError('ServiceUnavailable', { reason: 'connection lost; nothing was changed' }, { headers: { 'Retry-After': '2' } });
        }
        log.warn({ err, changes: changes.length }, 'connection lost after the change committed; answering as done');
        if (!committed) return undefined;
        try {
          return await whenBack(() => committed(changes), until);
        } catch (lost) {
          if (!isConnectionError(lost)) throw lost;
          const first = changes[0]!;
          throw new ApiError(
            'ChangedUnread',
            { what: `${first.resource_type} ${first.resource_id} (${first.event})` },
            { headers: { 'Retry-After': '5' } },
          );
        }
      }
    }
  }
}
