/**
 * `Prefer: wait=N` on a state-changing request: wait (up to N seconds,
 * capped) for the machine to allow it instead of being refused at once.
 * See src/waiting.ts.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { preferredWait, type Waits } from '../waiting.ts';

declare module 'fastify' {
  interface FastifyInstance {
    waits: Waits;
  }
}

export async function maybeWait<T>(req: FastifyRequest, reply: FastifyReply, fn: () => Promise<T>): Promise<T> {
  const seconds = preferredWait(req.headers.prefer);
  if (seconds === undefined) return fn();
  void reply.header('Preference-Applied', `wait=${seconds}`);
  return req.server.waits.attempt(seconds, fn);
}
