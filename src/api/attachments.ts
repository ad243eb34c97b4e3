/**
 * /v3[/{project_id}]/attachments (microversion 3.27 and later; 404 below,
 * as in Cinder): create (with or without a connector), list, show, update
 * with a connector, os-complete (3.44), delete.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ATTACHMENT_STATUSES } from '../../machines/attachment.ts';
import { ApiError } from '../errors.ts';
import type { AttachmentRecord, AttachmentService } from '../services/attachments.ts';
import { listHandler, type ListRoute } from './lists.ts';
import { changeState, createdBy } from './changes.ts';
import { invalid, isUuid, rejectUnknown, show, unwrap } from './parse.ts';
import { ActionBody, IdParams, ProjectParams, Query } from './schemas.ts';
import { attachmentDetail, attachmentSummary, stateHeaders, transitionView } from './views.ts';

const AttachmentBody = Type.Object(
  {
    attachment: Type.Optional(
      Type.Object(
        {
          volume_uuid: Type.Optional(Type.Unknown()),
          instance_uuid: Type.Optional(Type.Unknown()),
          connector: Type.Optional(Type.Unknown()),
          mode: Type.Optional(Type.Unknown()),
        },
        { additionalProperties: true },
      ),
    ),
  },
  { additionalProperties: true },
);

function requireVersion(req: FastifyRequest, min: number) {
  if (req.mv < min) throw new ApiError('NotFound');
}

function attachmentId(id: string): string {
  if (!isUuid(id)) throw new ApiError('AttachmentNotFound', { id });
  return id.toLowerCase();
}

function connectorOf(value: unknown): Record<string, unknown> | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid('connector', value, 'the connector must be an object.');
  return value as Record<string, unknown>;
}

function modeOf(req: FastifyRequest, value: unknown): 'rw' | 'ro' | null {
  if (value === undefined || value === null) return null;
  if (req.mv < 54)
    throw invalid('attachment', { mode: value }, "Additional properties are not allowed ('mode' was unexpected before microversion 3.54).");
  if (value !== 'rw' && value !== 'ro') throw invalid('mode', value, "It must be 'rw' or 'ro'.");
  return value;
}

export const attachmentRoutes: FastifyPluginAsync<{ attachments: AttachmentService }> = async (app, { attachments }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  const list: ListRoute<AttachmentRecord> = {
    collection: 'attachments',
    named: false,
    minVersion: 27,
    statuses: ATTACHMENT_STATUSES,
    sortKeys: attachments.sortKeys,
    filters: (q): Record<string, string> | null => {
      const out: Record<string, string> = {};
      if (q.volume_id !== undefined) {
        if (!isUuid(q.volume_id)) return null;
        out.volume_id = q.volume_id.toLowerCase();
      }
      if (q.instance_id !== undefined) out.instance_uuid = q.instance_id;
      return out;
    },
    list: (q) => attachments.list(q),
    detail: (a) => attachmentDetail(a),
    summary: (a) => attachmentSummary(a),
  };
  r.get('/attachments', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, false));
  r.get('/attachments/detail', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, true));

  r.get('/attachments/:id', { schema: { params: IdParams } }, async (req, reply) => {
    requireVersion(req, 27);
    const attachment = await attachments.get(req.caller, attachmentId(req.params.id));
    stateHeaders(reply, attachment);
    return { attachment: attachmentDetail(attachment) };
  });

  r.post('/attachments', { schema: { params: ProjectParams, body: AttachmentBody } }, async (req, reply) => {
    requireVersion(req, 27);
    const body = unwrap(req.body, 'attachment');
    rejectUnknown(body, 'attachment', ['volume_uuid', 'instance_uuid', 'connector', 'mode']);
    const volumeUuid = body.volume_uuid;
    if (volumeUuid === undefined || volumeUuid === null) throw invalid('volume_uuid', 'None', 'volume_uuid is required.');
    if (typeof volumeUuid !== 'string' || !isUuid(volumeUuid)) throw new ApiError('VolumeNotFound', { id: show(volumeUuid) });
    const instance = body.instance_uuid;
    if (instance !== undefined && instance !== null && typeof instance !== 'string')
      throw invalid('instance_uuid', instance, 'It must be a string.');
    const input = {
      volumeId: volumeUuid.toLowerCase(),
      instanceUuid: (instance as string | undefined) ?? null,
      connector: connectorOf(body.connector),
      mode: modeOf(req, body.mode),
    };
    const attachment = await changeState(
      req,
      reply,
      () => attachments.create(req.caller, input),
      (changes) => attachments.get(req.caller, createdBy(changes, 'attachment')),
    );
    return { attachment: attachmentDetail(attachment) };
  });

  r.put('/attachments/:id', { schema: { params: IdParams, body: AttachmentBody } }, async (req, reply) => {
    requireVersion(req, 27);
    const id = attachmentId(req.params.id);
    const body = unwrap(req.body, 'attachment');
    rejectUnknown(body, 'attachment', ['connector', 'mode']);
    const connector = connectorOf(body.connector);
    if (!connector || Object.keys(connector).length === 0)
      throw invalid('connector', body.connector ?? 'None', 'an update needs a connector.');
    const mode = modeOf(req, body.mode);
    const attachment = await changeState(
      req,
      reply,
      () => attachments.connectTo(req.caller, id, connector, mode),
      () => attachments.get(req.caller, id),
    );
    return { attachment: attachmentDetail(attachment) };
  });

  r.post('/attachments/:id/action', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    requireVersion(req, 44);
    const keys = Object.keys(req.body);
    if (keys.length !== 1) {
      throw new ApiError('MalformedBody', {
        reason: `an action body has exactly one key, the action; got ${keys.length ? keys.join(', ') : 'none'}`,
      });
    }
    if (keys[0] !== 'os-complete') throw new ApiError('NoSuchAction', { action: keys[0] });
    const id = attachmentId(req.params.id);
    await changeState(req, reply, () => attachments.complete(req.caller, id));
    return reply.code(204).send();
  });

  r.delete('/attachments/:id', { schema: { params: IdParams } }, async (req, reply) => {
    requireVersion(req, 27);
    const id = attachmentId(req.params.id);
    // Its volume first (an attachment never changes volume), for the answer:
    // the volume's remaining attachments.
    const { volume_id: volumeId } = await attachments.get(req.caller, id);
    const remaining = await changeState(
      req,
      reply,
      async () => {
        await attachments.remove(req.caller, id);
        return attachments.ofVolume(volumeId);
      },
      () => attachments.ofVolume(volumeId),
    );
    return { attachments: remaining.map(attachmentSummary) };
  });

  r.get('/attachments/:id/transitions', { schema: { params: IdParams } }, async (req) => {
    requireVersion(req, 27);
    const rows = await attachments.history(req.caller, attachmentId(req.params.id));
    return { transitions: rows.map(transitionView) };
  });
};
