/**
 * Every state-changing request runs its change through `changeState`,
 * which adds two things the routes would otherwise each get wrong:
 *
 * - `Prefer: wait=N`: wait (up to N seconds, capped) for the machine to
 *   allow the change instead of being refused at once (src/waiting.ts).
 *
 * - An answer that is true when the database connection is lost
 *   mid-change (src/services/outcomes.ts): the history tells whether the
 *   change committed; the request is answered as done, tried again, or
 *   503 saying what is known.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ResourceType } from '../../machines/index.ts';
import { CREATE_EVENT } from '../../machines/model.ts';
import type { Change, ChangeOutcomes, Committed } from '../services/outcomes.ts';
import { preferredWait, type Waits } from '../waiting.ts';

export type { Committed };

declare module 'fastify' {
  interface FastifyInstance {
    waits: Waits;
    changes: ChangeOutcomes;
  }
}

/** A change whose result the answer does not need: after a lost connection that committed, the handler goes on. */
export function changeState(req: FastifyRequest, reply: FastifyReply, fn: () => Promise<unknown>): Promise<void>;
/** A change whose result the answer needs: after a lost connection that committed, `committed` rebuilds it. */
export function changeState<T>(req: FastifyRequest, reply: FastifyReply, fn: () => Promise<T>, committed: Committed<T>): Promise<T>;
export async function changeState<T>(
  req: FastifyRequest,
  reply: FastifyReply,
  fn: () => Promise<T>,
  committed?: Committed<T>,
): Promise<T | undefined> {
  const seconds = preferredWait(req.headers.prefer);
  if (seconds !== undefined) void reply.header('Preference-Applied', `wait=${seconds}`);
  const attempt = () => (seconds === undefined ? fn() : req.server.waits.attempt(seconds, fn));
  return req.server.changes.run(req.id, attempt, committed, req.log);
}

/** The resource a request created, from its changes. */
export function createdBy(changes: Change[], type: ResourceType): string {
  const made = changes.find((c) => c.resource_type === type && c.event === CREATE_EVENT);
  if (!made) throw new Error(`the request's changes hold no ${type} CREATE`);
  return made.resource_id;
}
