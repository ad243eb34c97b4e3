/**
 * `GET /v3[/{project_id}]/events`: the transitions of the caller's
 * resources (every project's for an admin with `all_tenants`) as
 * server-sent events, as they happen on any node — the notifications
 * Cinder publishes on its message bus, for anyone who watches volumes
 * without polling. `?resource_type=volume|snapshot|attachment` and
 * `?resource_id=<uuid>` filter; `Last-Event-ID` (or `?last_event_id=`)
 * resumes after an event already seen. Each event:
 *
 *     id: 1234
 *     event: transition
 *     data: {"id":1234,"resource_type":"volume","resource_id":"…","from":"available",
 *            "event":"EXTEND","to":"extending","version":5,"actor":"…","request_id":"req-…","at":"…"}
 */
import type { FastifyPluginAsync } from 'fastify';
import { RESOURCE_TYPES } from '../../machines/index.ts';
import { ApiError } from '../errors.ts';
import type { TransitionTail } from '../events.ts';
import { timestamp } from './views.ts';
import { isUuid, show } from './parse.ts';
import { listScope } from './lists.ts';

/** A comment line every so often keeps proxies from closing a quiet stream. */
const KEEPALIVE_MS = 15_000;

export const eventRoutes: FastifyPluginAsync<{ tail: TransitionTail }> = async (app, { tail }) => {
  const open = new Set<() => void>();
  // A stream never ends by itself: close them all when the app closes, or it would wait for them.
  app.addHook('preClose', async () => {
    for (const end of open) end();
  });

  app.get<{ Querystring: Record<string, string> }>('/events', async (req, reply) => {
    const q = req.query;
    const type = q.resource_type;
    if (type !== undefined && !(RESOURCE_TYPES as readonly string[]).includes(type)) {
      throw new ApiError('InvalidInput', { reason: `resource_type '${type}' is not one of ${RESOURCE_TYPES.join(', ')}.` });
    }
    const id = q.resource_id;
    if (id !== undefined && !isUuid(id)) throw new ApiError('InvalidInput', { reason: `resource_id '${show(id)}' is not a UUID.` });
    const project = listScope(req.caller, q);
    const last = (req.headers['last-event-id'] as string | undefined) ?? q.last_event_id;
    if (last !== undefined && !/^[0-9]{1,15}$/.test(last))
      throw new ApiError('InvalidInput', { reason: `Last-Event-ID '${last}' is not an event id this stream gave.` });
    const after = last !== undefined ? Number(last) : await tail.now();

    reply.hijack();
    const raw = reply.raw;
    raw.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      connection: 'keep-alive',
      'x-openstack-request-id': req.id,
    });
    raw.write(': volstate transitions\n\n');
    const unsubscribe = tail.subscribe({
      after,
      accept: (e) =>
        (type === undefined || e.resource_type === type) &&
        (id === undefined || e.resource_id === id.toLowerCase()) &&
        (project === undefined || e.project_id === project),
      send: (e) => {
        const data = {
          id: e.id,
          resource_type: e.resource_type,
          resource_id: e.resource_id,
          from: e.from_state,
          event: e.event,
          to: e.to_state,
          version: e.version,
          actor: e.actor,
          request_id: e.request_id,
          at: timestamp(e.at),
        };
        raw.write(`id: ${e.id}\nevent: transition\ndata: ${JSON.stringify(data)}\n\n`);
      },
    });
    const keepalive = setInterval(() => raw.write(': keepalive\n\n'), KEEPALIVE_MS);
    const end = () => {
      clearInterval(keepalive);
      unsubscribe();
      open.delete(end);
      raw.end();
    };
    open.add(end);
    req.raw.on('close', end);
  });
};
