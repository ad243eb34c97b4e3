/**
 * User messages (3.3 and later; src/services/messages.ts): why an asynchronous
 * operation failed. A project sees its own; an admin any by id.
 *
 *   GET    /messages, /messages/{id}
 *   DELETE /messages/{id}            204
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.ts';
import type { MessageRow, MessageService } from '../services/messages.ts';
import { isUuid, parseLimit } from './parse.ts';
import { ProjectParams, Query } from './schemas.ts';
import { timestamp } from './views.ts';

export interface MessageRoutesOptions {
  messages: MessageService;
}

const Params = Type.Object({ id: Type.String(), project_id: Type.Optional(Type.String()) });

function view(req: FastifyRequest, m: MessageRow) {
  const p = req.urlProject ? `/${req.urlProject}` : '';
  const base = `${req.protocol}://${req.host}`;
  return {
    id: m.id,
    message_level: m.message_level,
    event_id: m.event_id,
    user_message: m.user_message,
    resource_type: m.resource_type,
    resource_uuid: m.resource_uuid,
    created_at: timestamp(m.created_at),
    guaranteed_until: timestamp(m.expires_at),
    request_id: m.request_id,
    links: [
      { rel: 'self', href: `${base}/v3${p}/messages/${m.id}` },
      { rel: 'bookmark', href: `${base}${p}/messages/${m.id}` },
    ],
  };
}

export const messageRoutes: FastifyPluginAsync<MessageRoutesOptions> = async (app, { messages }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  // This plugin's routes only: messages came with 3.3.
  app.addHook('preHandler', async (req) => {
    if (req.mv < 3) throw new ApiError('NotFound');
  });
  const idOf = (id: string) => {
    if (!isUuid(id)) throw new ApiError('MessageNotFound', { id });
    return id.toLowerCase();
  };

  r.get('/messages', { schema: { params: ProjectParams, querystring: Query } }, async (req) => ({
    // An admin lists its own project's, as Cinder's policy has it; any by id.
    messages: (await messages.list(req.caller, parseLimit(req.query.limit))).map((m) => view(req, m)),
  }));

  r.get('/messages/:id', { schema: { params: Params } }, async (req) => {
    return { message: view(req, await messages.get(req.caller, idOf(req.params.id))) };
  });

  r.delete('/messages/:id', { schema: { params: Params } }, async (req, reply) => {
    await messages.delete(req.caller, idOf(req.params.id));
    return reply.code(204).send();
  });
};
