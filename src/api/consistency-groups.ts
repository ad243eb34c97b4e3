/**
 * /v3[/{project_id}]/consistencygroups and /cgsnapshots: the consistency
 * group API that groups replaced, served from the same groups and group
 * snapshots, as Cinder serves it since (cinder/api/contrib/consistencygroups.py):
 * a consistency group is a group of the type `default_cgsnapshot_type`,
 * every operation is the group's, with its one-transaction guarantees.
 *
 *   GET    /consistencygroups, /consistencygroups/detail, /consistencygroups/{id}   groups of any type, as Cinder lists them
 *   POST   /consistencygroups                      202 {"consistencygroup": {name, description, volume_types: "t1,t2", availability_zone}}
 *   POST   /consistencygroups/create_from_src      202 {"consistencygroup-from-src": {cgsnapshot_id | source_cgid, name, description}}
 *   POST   /consistencygroups/{id}/delete          202 {"consistencygroup": {"force": bool}}: force deletes its volumes with it
 *   PUT    /consistencygroups/{id}/update          202 {"consistencygroup": {name, description, add_volumes, remove_volumes}}
 *   GET    /cgsnapshots, /cgsnapshots/detail, /cgsnapshots/{id}
 *   POST   /cgsnapshots                            202 {"cgsnapshot": {consistencygroup_id, name, description}}
 *   DELETE /cgsnapshots/{id}                       202
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { GROUP_STATUSES } from '../../machines/group.ts';
import { GROUP_SNAPSHOT_STATUSES } from '../../machines/group-snapshot.ts';
import { MODELS } from '../../machines/index.ts';
import { ApiError } from '../errors.ts';
import { CG_TYPE, type GroupRecord, type GroupService, type GroupSnapshotRecord, type GroupSnapshotService } from '../services/groups.ts';
import type { VolumeService } from '../services/volumes.ts';
import { changeState, createdBy } from './changes.ts';
import { fromSourceInput, groupId, groupSnapshotId } from './groups.ts';
import { listHandler, type ListRoute } from './lists.ts';
import { invalid, parseBool, parseText } from './parse.ts';
import { ActionBody, IdParams, ProjectParams, Query } from './schemas.ts';
import { stateHeaders, timestamp } from './views.ts';

function cgDetail(g: GroupRecord) {
  return {
    id: g.id,
    status: MODELS.group.index.statusOf(g.state),
    availability_zone: g.availability_zone,
    created_at: timestamp(g.created_at),
    name: g.name,
    description: g.description,
    volume_types: g.volume_type_ids,
  };
}

function cgsnapshotDetail(s: GroupSnapshotRecord) {
  return {
    id: s.id,
    consistencygroup_id: s.group_id,
    status: MODELS.group_snapshot.index.statusOf(s.state),
    created_at: timestamp(s.created_at),
    name: s.name,
    description: s.description,
  };
}

/** The body's object under `key`: absent or null is empty (Cinder's delete takes `{}` or null). */
function section(body: Record<string, unknown>, key: string): Record<string, unknown> {
  const value = body[key];
  if (value === undefined || value === null) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(key, value, `${key} is an object.`);
  return value as Record<string, unknown>;
}

/** Comma-separated ids, as the consistency group API takes lists. */
function idList(value: unknown, field: string): string[] {
  if (value === undefined || value === null || value === '') return [];
  if (typeof value !== 'string') throw invalid(field, value, 'give ids separated by commas.');
  return value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
}

export interface ConsistencyGroupRoutesOptions {
  volumes: VolumeService;
  groups: GroupService;
  groupSnapshots: GroupSnapshotService;
}

export const consistencyGroupRoutes: FastifyPluginAsync<ConsistencyGroupRoutesOptions> = async (
  app,
  { volumes, groups, groupSnapshots },
) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  const list: ListRoute<GroupRecord> = {
    collection: 'consistencygroups',
    named: false,
    statuses: GROUP_STATUSES,
    sortKeys: groups.sortKeys,
    list: (q) => groups.list(q),
    detail: (g) => cgDetail(g),
    summary: (g) => ({ id: g.id, name: g.name }),
  };
  r.get('/consistencygroups', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, false));
  r.get('/consistencygroups/detail', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, true));

  r.get('/consistencygroups/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const group = await groups.get(req.caller, groupId(req.params.id));
    stateHeaders(reply, group);
    return { consistencygroup: cgDetail(group) };
  });

  r.post('/consistencygroups', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    const body = section(req.body, 'consistencygroup');
    const types = idList(body.volume_types, 'volume_types');
    if (types.length === 0) throw invalid('volume_types', body.volume_types ?? 'None', 'a consistency group needs volume types ("t1,t2").');
    const input = {
      name: parseText(body.name, 'name'),
      description: parseText(body.description, 'description'),
      groupType: CG_TYPE,
      volumeTypes: types,
      availabilityZone: parseText(body.availability_zone, 'availability_zone'),
    };
    const group = await changeState(
      req,
      reply,
      () => groups.create(req.caller, input),
      (changes) => groups.get(req.caller, createdBy(changes, 'group')),
    );
    stateHeaders(reply.code(202), group);
    return { consistencygroup: { id: group.id, name: group.name } };
  });

  r.post('/consistencygroups/create_from_src', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    const body = section(req.body, 'consistencygroup-from-src');
    const input = fromSourceInput(body, 'cgsnapshot_id', 'source_cgid');
    const group = await changeState(
      req,
      reply,
      () => groups.createFromSource(req.caller, volumes, input),
      (changes) => groups.get(req.caller, createdBy(changes, 'group')),
    );
    stateHeaders(reply.code(202), group);
    return { consistencygroup: { id: group.id, name: group.name } };
  });

  r.post('/consistencygroups/:id/delete', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    const id = groupId(req.params.id);
    const force = section(req.body ?? {}, 'consistencygroup').force;
    const deleteVolumes = force === undefined || force === null ? false : parseBool(force, 'force');
    await changeState(req, reply, () => groups.remove(req.caller, id, deleteVolumes));
    return reply.code(202).send();
  });

  r.put('/consistencygroups/:id/update', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    const id = groupId(req.params.id);
    const body = section(req.body, 'consistencygroup');
    if (body.name === undefined && body.description === undefined && body.add_volumes === undefined && body.remove_volumes === undefined) {
      throw new ApiError('InvalidInput', { reason: 'give at least one of name, description, add_volumes, remove_volumes.' });
    }
    const update = {
      ...(body.name !== undefined ? { name: parseText(body.name, 'name') } : {}),
      ...(body.description !== undefined ? { description: parseText(body.description, 'description') } : {}),
      add: idList(body.add_volumes, 'add_volumes').map((v) => v.toLowerCase()),
      remove: idList(body.remove_volumes, 'remove_volumes').map((v) => v.toLowerCase()),
    };
    await changeState(req, reply, () => groups.change(req.caller, id, update));
    return reply.code(202).send();
  });

  const snapshots: ListRoute<GroupSnapshotRecord> = {
    collection: 'cgsnapshots',
    named: false,
    statuses: GROUP_SNAPSHOT_STATUSES,
    sortKeys: groupSnapshots.sortKeys,
    list: (q) => groupSnapshots.list(q),
    detail: (s) => cgsnapshotDetail(s),
    summary: (s) => ({ id: s.id, name: s.name }),
  };
  r.get('/cgsnapshots', { schema: { params: ProjectParams, querystring: Query } }, listHandler(snapshots, false));
  r.get('/cgsnapshots/detail', { schema: { params: ProjectParams, querystring: Query } }, listHandler(snapshots, true));

  r.get('/cgsnapshots/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const snapshot = await groupSnapshots.get(req.caller, groupSnapshotId(req.params.id));
    stateHeaders(reply, snapshot);
    return { cgsnapshot: cgsnapshotDetail(snapshot) };
  });

  r.post('/cgsnapshots', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    const body = section(req.body, 'cgsnapshot');
    if (typeof body.consistencygroup_id !== 'string')
      throw invalid('consistencygroup_id', body.consistencygroup_id ?? 'None', 'name the consistency group to snapshot.');
    const input = {
      groupId: groupId(body.consistencygroup_id),
      name: parseText(body.name, 'name'),
      description: parseText(body.description, 'description'),
    };
    const snapshot = await changeState(
      req,
      reply,
      () => groupSnapshots.create(req.caller, input),
      (changes) => groupSnapshots.get(req.caller, createdBy(changes, 'group_snapshot')),
    );
    stateHeaders(reply.code(202), snapshot);
    return { cgsnapshot: { id: snapshot.id, name: snapshot.name } };
  });

  r.delete('/cgsnapshots/:id', { schema: { params: IdParams } }, async (req, reply) => {
    const id = groupSnapshotId(req.params.id);
    await changeState(req, reply, () => groupSnapshots.remove(req.caller, id));
    return reply.code(202).send();
  });
};
