/**
 * /v3[/{project_id}]/volumes: Cinder's volume routes.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { VOLUME_STATUSES } from '../../machines/volume.ts';
import { ApiError } from '../errors.ts';
import type { AttachmentRecord, AttachmentService } from '../services/attachments.ts';
import type { VolumeRecord, VolumeService } from '../services/volumes.ts';
import { viewContext } from './context.ts';
import { listHandler, listScope, type ListRoute } from './lists.ts';
import { changeState, createdBy } from './changes.ts';
import {
  describedPatch,
  isUuid,
  parseBool,
  parseIfMatch,
  parseMetadata,
  parseSize,
  parseText,
  rejectUnknown,
  show,
  unwrap,
} from './parse.ts';
import { IdParams, ProjectParams, Query, VolumeCreateBody, VolumeUpdateBody } from './schemas.ts';
import { stateHeaders, transitionView, volumeDetail, volumeSummary } from './views.ts';

export interface VolumeRoutesOptions {
  volumes: VolumeService;
  attachments: AttachmentService;
}

const CREATE_KEYS = [
  'size',
  'name',
  'description',
  'display_name',
  'display_description',
  'metadata',
  'snapshot_id',
  'source_volid',
  'volume_type',
  'availability_zone',
  'imageRef',
  'backup_id',
  'consistencygroup_id',
  'group_id',
  'multiattach',
  'scheduler_hints',
];

/** A volume id from the URL: anything that is not a UUID cannot name a volume (404, as OSC's name lookup needs). */
export function volumeId(id: string): string {
  if (!isUuid(id)) throw new ApiError('VolumeNotFound', { id });
  return id.toLowerCase();
}

function unsupported(body: Record<string, unknown>, key: string, what: string) {
  if (body[key] !== undefined && body[key] !== null) {
    throw new ApiError('InvalidInput', { reason: `${what} is not supported by volstate; leave ${key} out.` });
  }
}

/** A source id from the body: a non-UUID names nothing (404, as for any missing source). */
function sourceId(
  value: unknown,
  field: string,
  notFound: 'SnapshotNotFound' | 'VolumeNotFound' | 'BackupNotFound' | 'GroupNotFound',
): string | null {
  if (value === undefined || value === null) return null;
  if (typeof value !== 'string') throw new ApiError('InvalidField', { field, value: JSON.stringify(value), reason: 'It must be an id.' });
  if (!isUuid(value)) throw new ApiError(notFound, { id: value });
  return value.toLowerCase();
}

export const volumeRoutes: FastifyPluginAsync<VolumeRoutesOptions> = async (app, { volumes, attachments }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  // Only volumes whose state row counts attachments: a volume at rest (most of them, and every poll
  // of a create or an extend) costs one statement, not two.
  const attachedTo = async (vs: VolumeRecord[]) => attachments.attachedTo(vs.filter((v) => v.attached_count > 0).map((v) => v.id));

  const list: ListRoute<VolumeRecord, Map<string, AttachmentRecord[]>> = {
    collection: 'volumes',
    statuses: VOLUME_STATUSES,
    sortKeys: volumes.sortKeys,
    // 3.10: the volumes of a group.
    filters: (q): Record<string, string> | null => {
      if (q.group_id === undefined) return {};
      return isUuid(q.group_id) ? { group_id: q.group_id.toLowerCase() } : null;
    },
    list: (q) => volumes.list(q),
    load: attachedTo,
    detail: (v, ctx, attached) => volumeDetail(v, ctx, attached.get(v.id)),
    summary: volumeSummary,
  };
  r.get('/volumes', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, false));
  r.get('/volumes/detail', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, true));

  // 3.12: how many volumes, how many gigabytes (and, from 3.36, every metadata key's values).
  r.get('/volumes/summary', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    if (req.mv < 12) throw new ApiError('VolumeNotFound', { id: 'summary' });
    const s = await volumes.summary(listScope(req.caller, req.query));
    return { 'volume-summary': { total_size: s.gb, total_count: s.count, ...(req.mv >= 36 ? { metadata: s.metadata } : {}) } };
  });

  r.post('/volumes', { schema: { params: ProjectParams, body: VolumeCreateBody } }, async (req, reply) => {
    const body = unwrap(req.body, 'volume');
    if (req.mv >= 53) rejectUnknown(body, 'volume', CREATE_KEYS);
    unsupported(body, 'imageRef', 'Creating a volume from an image');
    // The group to create it in (3.13; a consistency group is a group, as Cinder reads consistencygroup_id).
    const groupId = sourceId(
      req.mv >= 13 ? (body.group_id ?? body.consistencygroup_id) : body.consistencygroup_id,
      'group_id',
      'GroupNotFound',
    );
    if (body.volume_type != null && typeof body.volume_type !== 'string')
      throw new ApiError('VolumeTypeNotFound', { id: JSON.stringify(body.volume_type) });
    if (body.availability_zone != null && body.availability_zone !== 'nova') {
      throw new ApiError('InvalidInput', {
        reason: `Availability zone '${show(body.availability_zone)}' is invalid: volstate has the one zone nova.`,
      });
    }
    const snapshotId = sourceId(body.snapshot_id, 'snapshot_id', 'SnapshotNotFound');
    const sourceVolid = sourceId(body.source_volid, 'source_volid', 'VolumeNotFound');
    // From a backup: 3.47 (below it, as in Cinder, the key is not read).
    const backupId = req.mv >= 47 ? sourceId(body.backup_id, 'backup_id', 'BackupNotFound') : null;
    if ([snapshotId, sourceVolid, backupId].filter(Boolean).length > 1)
      throw new ApiError('InvalidInput', { reason: 'give one of snapshot_id, source_volid and backup_id, not several.' });
    const noSize = body.size === undefined || body.size === null;
    if (noSize && !snapshotId && !sourceVolid && !backupId)
      throw new ApiError('InvalidField', { field: 'size', value: 'None', reason: 'size is required.' });
    const input = {
      size: noSize ? null : parseSize(body.size),
      name: parseText(body.name ?? body.display_name, 'name'),
      description: parseText(body.description ?? body.display_description, 'description'),
      metadata: parseMetadata(body.metadata),
      multiattach: body.multiattach === undefined || body.multiattach === null ? false : parseBool(body.multiattach, 'multiattach'),
      snapshotId,
      sourceVolid,
      backupId,
      volumeType: body.volume_type || null,
      groupId,
    };
    const volume = await changeState(
      req,
      reply,
      () => volumes.create(req.caller, input),
      (changes) => volumes.get(req.caller, createdBy(changes, 'volume')),
    );
    stateHeaders(reply.code(202), volume);
    return { volume: volumeDetail(volume, viewContext(req), [], false) };
  });

  r.get('/volumes/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const volume = await volumes.get(req.caller, volumeId(req.params.id));
    stateHeaders(reply, volume);
    return { volume: volumeDetail(volume, viewContext(req), (await attachedTo([volume])).get(volume.id)) };
  });

  r.put('/volumes/:id', { schema: { params: IdParams, body: VolumeUpdateBody } }, async (req, reply) => {
    const id = volumeId(req.params.id);
    const body = unwrap(req.body, 'volume');
    if (req.mv >= 53) {
      rejectUnknown(body, 'volume', ['name', 'description', 'display_name', 'display_description', 'metadata']);
      if (Object.keys(body).length === 0)
        throw new ApiError('InvalidInput', { reason: 'give at least one of name, description, metadata.' });
    }
    const volume = await volumes.update(req.caller, id, describedPatch(body));
    stateHeaders(reply, volume);
    // Cinder's update answer is the create form: no os-vol-* attributes.
    return { volume: volumeDetail(volume, viewContext(req), (await attachedTo([volume])).get(volume.id), false) };
  });

  r.delete('/volumes/:id', { schema: { params: IdParams, querystring: Query } }, async (req, reply) => {
    const id = volumeId(req.params.id);
    const q = req.query;
    const cascade = q.cascade !== undefined && parseBool(q.cascade, 'cascade');
    const force = req.mv >= 23 && q.force !== undefined && parseBool(q.force, 'force');
    if (force && !req.caller.isAdmin) throw new ApiError('Forbidden', { action: 'volume:force_delete' });
    const ifMatch = parseIfMatch(req.headers['if-match']);
    await changeState(req, reply, () => volumes.remove(req.caller, id, { cascade, force }, ifMatch));
    return reply.code(202).send();
  });

  r.get('/volumes/:id/transitions', { schema: { params: IdParams } }, async (req) => {
    const rows = await volumes.history(req.caller, volumeId(req.params.id));
    return { transitions: rows.map(transitionView) };
  });
};
