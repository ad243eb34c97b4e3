/**
 * /v3[/{project_id}]/snapshots: Cinder's snapshot routes and actions.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { SNAPSHOT_STATUSES } from '../../machines/snapshot.ts';
import { ApiError } from '../errors.ts';
import { actionNotImplemented, SNAPSHOT_ACTIONS_NOT_IMPLEMENTED } from './not-implemented.ts';
import type { SnapshotRecord, SnapshotService } from '../services/snapshots.ts';
import { viewContext } from './context.ts';
import { listHandler, type ListRoute } from './lists.ts';
import { changeState, createdBy } from './changes.ts';
import { describedPatch, invalid, isUuid, parseBool, parseIfMatch, parseMetadata, parseText, unwrap } from './parse.ts';
import { ActionBody, IdParams, ProjectParams, Query, SnapshotCreateBody, SnapshotUpdateBody } from './schemas.ts';
import { snapshotDetail, snapshotSummary, stateHeaders, transitionView } from './views.ts';

/** Cinder's SnapshotStatus values, which os-reset_status validates against before the machine decides. */
export const CINDER_SNAPSHOT_STATUSES = [
  'error',
  'available',
  'creating',
  'deleting',
  'deleted',
  'updating',
  'error_deleting',
  'unmanaging',
  'backing-up',
  'restoring',
] as const;

export function snapshotId(id: string): string {
  if (!isUuid(id)) throw new ApiError('SnapshotNotFound', { id });
  return id.toLowerCase();
}

export const snapshotRoutes: FastifyPluginAsync<{ snapshots: SnapshotService }> = async (app, { snapshots }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  const list: ListRoute<SnapshotRecord> = {
    collection: 'snapshots',
    statuses: SNAPSHOT_STATUSES,
    sortKeys: snapshots.sortKeys,
    // A volume_id that is no UUID names no volume: the list is empty.
    filters: (q): Record<string, string> | null => {
      if (q.volume_id === undefined) return {};
      return isUuid(q.volume_id) ? { volume_id: q.volume_id.toLowerCase() } : null;
    },
    list: (q) => snapshots.list(q),
    detail: (n, ctx) => snapshotDetail(n, ctx),
    summary: snapshotSummary,
  };
  r.get('/snapshots', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, false));
  r.get('/snapshots/detail', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, true));

  r.post('/snapshots', { schema: { params: ProjectParams, body: SnapshotCreateBody } }, async (req, reply) => {
    const body = unwrap(req.body, 'snapshot');
    if (body.volume_id === undefined) throw invalid('volume_id', 'None', 'volume_id is required.');
    // null names no volume: 404, as Cinder answers it (Tempest checks).
    if (body.volume_id === null) throw new ApiError('VolumeNotFound', { id: 'None' });
    if (typeof body.volume_id !== 'string') throw invalid('volume_id', body.volume_id, 'it must be a volume id.');
    // From 3.66 snapshots of in-use volumes need no force, and force=false is refused.
    let force = req.mv >= 66;
    if (body.force !== undefined && body.force !== null) {
      force = parseBool(body.force, 'force') || force;
      if (req.mv >= 66 && !parseBool(body.force, 'force')) {
        throw new ApiError('InvalidInput', {
          reason: 'Since microversion 3.66 the force flag is invalid for snapshot creation; leave it out.',
        });
      }
    }
    if (!isUuid(body.volume_id)) throw new ApiError('VolumeNotFound', { id: body.volume_id });
    const input = {
      volumeId: body.volume_id.toLowerCase(),
      force,
      name: parseText(body.name ?? body.display_name, 'name'),
      description: parseText(body.description ?? body.display_description, 'description'),
      metadata: parseMetadata(body.metadata),
    };
    const snapshot = await changeState(
      req,
      reply,
      () => snapshots.create(req.caller, input),
      (changes) => snapshots.get(req.caller, createdBy(changes, 'snapshot')),
    );
    stateHeaders(reply.code(202), snapshot);
    return { snapshot: snapshotDetail(snapshot, viewContext(req), false) };
  });

  r.get('/snapshots/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const snapshot = await snapshots.get(req.caller, snapshotId(req.params.id));
    stateHeaders(reply, snapshot);
    return { snapshot: snapshotDetail(snapshot, viewContext(req)) };
  });

  r.put('/snapshots/:id', { schema: { params: IdParams, body: SnapshotUpdateBody } }, async (req, reply) => {
    const id = snapshotId(req.params.id);
    const body = unwrap(req.body, 'snapshot');
    const snapshot = await snapshots.update(req.caller, id, describedPatch(body));
    stateHeaders(reply, snapshot);
    // Cinder's update answer has no os-extended-snapshot-attributes.
    return { snapshot: snapshotDetail(snapshot, viewContext(req), false) };
  });

  r.delete('/snapshots/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const id = snapshotId(req.params.id);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    // A member of a group snapshot goes with it (as in Cinder): the group snapshot is deleted whole or not at all.
    const member = (await snapshots.get(req.caller, id)).group_snapshot_id;
    if (member) {
      throw new ApiError('InvalidSnapshot', {
        reason: `snapshot ${id} is part of group snapshot ${member}: delete the group snapshot (DELETE /group_snapshots/${member}).`,
      });
    }
    await changeState(req, reply, () => snapshots.send(req.caller, id, { type: 'DELETE' }, ifMatch));
    return reply.code(202).send();
  });

  r.post('/snapshots/:id/action', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    const keys = Object.keys(req.body);
    if (keys.length !== 1) {
      throw new ApiError('MalformedBody', {
        reason: `an action body has exactly one key, the action; got ${keys.length ? keys.join(', ') : 'none'}`,
      });
    }
    const name = keys[0]!;
    if (name !== 'os-reset_status' && name !== 'os-force_delete' && name !== 'os-update_snapshot_status')
      throw actionNotImplemented(SNAPSHOT_ACTIONS_NOT_IMPLEMENTED, name) ?? new ApiError('NoSuchAction', { action: name });
    const id = snapshotId(req.params.id);
    const ifMatch = parseIfMatch(req.headers['if-match']);
    if (name === 'os-update_snapshot_status') {
      // The owner may report (Nova does, with the user's token), as Cinder's policy has it.
      const args = req.body[name];
      if (args === null || typeof args !== 'object' || Array.isArray(args))
        throw invalid(name, args, 'give {"status": ..., "progress": ...}.');
      const { status, progress } = args as Record<string, unknown>;
      if (status !== 'available' && status !== 'error') throw invalid('status', status ?? 'None', "status must be 'available' or 'error'.");
      if (progress !== undefined && progress !== null && (typeof progress !== 'string' || !/^(100|[1-9]?[0-9])%$/.test(progress))) {
        throw invalid('progress', progress, "progress must be a percentage such as '80%'.");
      }
      await changeState(req, reply, () =>
        snapshots.send(req.caller, id, { type: 'UPDATE_STATUS', status, progress: (progress as string | undefined) ?? null }, ifMatch),
      );
      return reply.code(202).send();
    }
    if (!req.caller.isAdmin) throw new ApiError('Forbidden', { action: `snapshot_extension:${name}` });
    if (name === 'os-force_delete') {
      await changeState(req, reply, () => snapshots.send(req.caller, id, { type: 'FORCE_DELETE' }, ifMatch));
      return reply.code(202).send();
    }
    const value = req.body[name];
    const status = value && typeof value === 'object' ? (value as Record<string, unknown>).status : undefined;
    if (typeof status !== 'string' || !(CINDER_SNAPSHOT_STATUSES as readonly string[]).includes(status)) {
      throw new ApiError('InvalidInput', {
        reason: `Snapshot status: ${String(status)} is invalid, valid statuses are: (${CINDER_SNAPSHOT_STATUSES.map((s) => `'${s}'`).join(', ')}).`,
      });
    }
    await changeState(req, reply, () => snapshots.send(req.caller, id, { type: 'RESET_STATUS', status }, ifMatch));
    return reply.code(202).send();
  });

  r.get('/snapshots/:id/transitions', { schema: { params: IdParams } }, async (req) => {
    const rows = await snapshots.history(req.caller, snapshotId(req.params.id));
    return { transitions: rows.map(transitionView) };
  });
};
