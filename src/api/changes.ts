/**
 * Every state-changing request runs its change through `changeState`,
 * which adds two things the routes would otherwise each get wrong:
 *
 * - `Prefer: wait=N`: wait (up to N seconds, capped) for the machine to
 *   allow the change instead of being refused at once (src/waiting.ts).
 *
 * - An answer that is true when the database connection is lost
 *   mid-change. The outcome is then unknown to this process: the server
 *   may have committed just before the connection went. Every change
 *   writes its history rows with the request id in the same statement, so
 *   once the database answers again one read tells (db/outcomes.ts):
 *   nothing committed → the change is tried again, now that the database
 *   answers, when the lost session is known to be over (the server ended
 *   it or closed its socket: a restart, a failover, a killed backend);
 *   otherwise, or once the patience is spent, 503 "nothing was changed";
 *   committed → the
 *   request succeeded, and it answers as such, `committed` rebuilding from
 *   the changed resources what the change would have returned; still
 *   unknown after the patience (the database stayed away) → 503 saying
 *   so; committed but the answer could not be read back in the patience →
 *   503 naming what was changed. A client never sees a 5xx for a change
 *   that was made, as long as the database comes back within the patience.
 *
 * Left open: when only the network between node and database breaks, a
 * statement the server is still running may commit after the read said
 * "nothing" (the server learns its client is gone only when it next talks
 * to it). A restart or crash of the server, or a killed backend, ends the
 * transaction first, so the read is exact there.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { changesOf, whenBack, type Change } from '../../db/outcomes.ts';
import { isConnectionError, sessionEnded } from '../../db/sqlstate.ts';
import type { Sql } from '../../db/connect.ts';
import type { ResourceType } from '../../machines/index.ts';
import { CREATE_EVENT } from '../../machines/model.ts';
import { ApiError } from '../errors.ts';
import { preferredWait, type Waits } from '../waiting.ts';

export interface ChangeSettings {
  sql: Sql;
  /** how long a request whose connection was lost waits for the database to tell what it did */
  inDoubtMs: number;
}

declare module 'fastify' {
  interface FastifyInstance {
    waits: Waits;
    changes: ChangeSettings;
  }
}

export type Committed<T> = (changes: Change[]) => Promise<T>;

/** A change whose result the answer does not need: after a lost connection that committed, the handler goes on. */
export function changeState(req: FastifyRequest, reply: FastifyReply, fn: () => Promise<unknown>): Promise<void>;
/** A change whose result the answer needs: after a lost connection that committed, `committed` rebuilds it. */
export function changeState<T>(req: FastifyRequest, reply: FastifyReply, fn: () => Promise<T>, committed: Committed<T>): Promise<T>;
export async function changeState<T>(req: FastifyRequest, reply: FastifyReply, fn: () => Promise<T>, committed?: Committed<T>): Promise<T | undefined> {
  const seconds = preferredWait(req.headers.prefer);
  if (seconds !== undefined) void reply.header('Preference-Applied', `wait=${seconds}`);
  const attempt = () => (seconds === undefined ? fn() : req.server.waits.attempt(seconds, fn));
  const { sql, inDoubtMs } = req.server.changes;
  let until: number | undefined;
  for (let tries = 1; ; tries++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isConnectionError(err)) throw err;
      until ??= Date.now() + inDoubtMs;
      const changes = await changesOf(sql, req.id, until);
      if (changes === undefined) {
        req.log.warn({ err }, 'connection lost mid-change; the database did not come back to tell what it did');
        throw new ApiError('OutcomeUnknown', { seconds: Math.round(inDoubtMs / 1000) }, { headers: { 'Retry-After': '5' } });
      }
      if (changes.length === 0) {
        // Nothing was changed, and the database answers again (a restart, a
        // failover): the change is made now, as if the request came now,
        // while the patience lasts. Only when the lost session is known to
        // be over (sessionEnded): a session cut off by the network alone
        // could still commit the first attempt after the read.
        if (sessionEnded(err) && Date.now() < until) {
          req.log.warn({ err, tries }, 'connection lost mid-change; nothing was changed; trying again');
          continue;
        }
        req.log.warn({ err }, 'connection lost mid-change; nothing was changed');
        throw new ApiError('ServiceUnavailable', { reason: 'connection lost; nothing was changed' }, { headers: { 'Retry-After': '2' } });
      }
      req.log.warn({ err, changes: changes.length }, 'connection lost after the change committed; answering as done');
      if (!committed) return undefined;
      try {
        return await whenBack(() => committed(changes), until);
      } catch (lost) {
        if (!isConnectionError(lost)) throw lost;
        const first = changes[0]!;
        throw new ApiError('ChangedUnread', { what: `${first.resource_type} ${first.resource_id} (${first.event})` }, { headers: { 'Retry-After': '5' } });
      }
    }
  }
}

/** The resource a request created, from its changes. */
export function createdBy(changes: Change[], type: ResourceType): string {
  const made = changes.find((c) => c.resource_type === type && c.event === CREATE_EVENT);
  if (!made) throw new Error(`the request's changes hold no ${type} CREATE`);
  return made.resource_id;
}
