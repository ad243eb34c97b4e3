/**
 * /v3[/{project_id}]: Cinder's group types (3.11), groups (3.13) and group
 * snapshots (3.14), at the microversions Cinder has them (below: 404, as
 * Cinder's VersionNotFoundForAPIMethod). Atomicity lives in
 * src/services/groups.ts; this file parses and renders.
 *
 *   GET    /group_types, /group_types/default, /group_types/{id}
 *   POST   /group_types                        admin, 202 {"group_type": {name, description, is_public, group_specs}}
 *   PUT    /group_types/{id}                   admin
 *   DELETE /group_types/{id}                   admin, 202; 400 while a group uses it
 *   GET    /group_types/{id}/group_specs[/{key}]
 *   POST   /group_types/{id}/group_specs       admin, 202, merged in
 *   PUT    /group_types/{id}/group_specs/{key} admin
 *   DELETE /group_types/{id}/group_specs/{key} admin, 202
 *   GET    /groups, /groups/detail, /groups/{id}
 *   POST   /groups                             202 {"group": {name, description, group_type, volume_types, availability_zone}}
 *   PUT    /groups/{id}                        202 {"group": {name, description, add_volumes, remove_volumes}}
 *   POST   /groups/{id}/action                 delete {"delete-volumes"}, reset_status (admin, 3.20)
 *   POST   /groups/action                      202 {"create-from-src": {group_snapshot_id | source_group_id, name, description}} (3.14)
 *   GET    /group_snapshots, /group_snapshots/detail, /group_snapshots/{id}
 *   POST   /group_snapshots                    202 {"group_snapshot": {group_id, name, description}}
 *   DELETE /group_snapshots/{id}               202
 *   POST   /group_snapshots/{id}/action        reset_status (admin, 3.19)
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { GROUP_STATUSES } from '../../machines/group.ts';
import { GROUP_SNAPSHOT_STATUSES } from '../../machines/group-snapshot.ts';
import { MODELS } from '../../machines/index.ts';
import { ApiError } from '../errors.ts';
import { actionNotImplemented, GROUP_ACTIONS_NOT_IMPLEMENTED } from './not-implemented.ts';
import type { GroupRecord, GroupService, GroupSnapshotRecord, GroupSnapshotService } from '../services/groups.ts';
import type { GroupTypeRow, GroupTypeService } from '../services/group-types.ts';
import type { VolumeService } from '../services/volumes.ts';
import { changeState, createdBy } from './changes.ts';
import { requireAdmin, viewContext, type ViewContext } from './context.ts';
import { listHandler, type ListRoute } from './lists.ts';
import { invalid, isUuid, textId, parseBool, parseText, unwrap } from './parse.ts';
import { ActionBody, IdParams, ProjectParams, Query } from './schemas.ts';
import { stateHeaders, timestamp, transitionView } from './views.ts';

/** Cinder's GroupStatus / GroupSnapshotStatus values, which a reset is checked against before the machine decides. */
const CINDER_GROUP_STATUSES = ['error', 'available', 'creating', 'deleting', 'deleted', 'updating', 'error_deleting'] as const;

const Params = Type.Object({ id: Type.String(), key: Type.Optional(Type.String()), project_id: Type.Optional(Type.String()) });

/** Below the microversion that brought a route, the route does not exist. */
function since(req: FastifyRequest, mv: number): void {
  if (req.mv < mv) throw new ApiError('NotFound');
}

export function groupId(id: string): string {
  if (!isUuid(id)) throw new ApiError('GroupNotFound', { id });
  return id.toLowerCase();
}

export function groupSnapshotId(id: string): string {
  if (!isUuid(id)) throw new ApiError('GroupSnapshotNotFound', { id });
  return id.toLowerCase();
}

function groupTypeView(t: GroupTypeRow, admin: boolean) {
  // Group specs are an admin's to see (group:access_group_types_specs).
  return { id: t.id, name: t.name, description: t.description, is_public: t.is_public, ...(admin ? { group_specs: t.group_specs } : {}) };
}

/** Group specs: keys of Cinder's pattern, string (or null) values of up to 255 characters. */
function groupSpecs(value: unknown, field = 'group_specs'): Record<string, string | null> {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value))
    throw invalid(field, value ?? 'None', 'group specs are an object of strings.');
  const out: Record<string, string | null> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (!/^[a-zA-Z0-9-_:.]{1,255}$/.test(k)) throw invalid(field, k, 'a key is 1 to 255 letters, digits, or -_:.');
    if (v !== null && (typeof v !== 'string' || v.length > 255))
      throw invalid(`${field}.${k}`, v, 'a value is a string of up to 255 characters, or null.');
    out[k] = v;
  }
  return out;
}

function groupTypeName(value: unknown): string {
  const name = parseText(value, 'name');
  if (name === null || name.trim() === '') throw invalid('name', value ?? 'None', 'a group type needs a name of 1 to 255 characters.');
  return name;
}

/** `add_volumes` / `remove_volumes`: comma-separated volume ids, as Cinder takes them. */
function volumeList(value: unknown, field: string): string[] {
  if (value === undefined || value === null || value === '') return [];
  if (typeof value !== 'string') throw invalid(field, value, 'give volume ids separated by commas.');
  const ids = value
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
  for (const id of ids) if (!isUuid(id)) throw new ApiError('VolumeNotFound', { id });
  return [...new Set(ids.map((id) => id.toLowerCase()))];
}

/** A group-from-source body (create-from-src, or the consistency group API's): exactly one source, by id. */
export function fromSourceInput(body: Record<string, unknown>, snapshotKey: string, groupKey: string) {
  const snapshotRef = body[snapshotKey] ?? undefined;
  const groupRef = body[groupKey] ?? undefined;
  if ((snapshotRef === undefined) === (groupRef === undefined)) {
    throw new ApiError('InvalidInput', { reason: `give exactly one of ${snapshotKey} and ${groupKey}.` });
  }
  return {
    name: parseText(body.name, 'name'),
    description: parseText(body.description, 'description'),
    ...(snapshotRef !== undefined
      ? { groupSnapshotId: groupSnapshotId(textId(snapshotRef, snapshotKey)) }
      : { sourceGroupId: groupId(textId(groupRef, groupKey)) }),
  };
}

export function groupDetail(g: GroupRecord, ctx: ViewContext, volumes?: string[]) {
  const view: Record<string, unknown> = {
    id: g.id,
    status: MODELS.group.index.statusOf(g.state),
    availability_zone: g.availability_zone,
    created_at: timestamp(g.created_at),
    name: g.name,
    description: g.description,
    group_type: g.group_type_id,
    volume_types: g.volume_type_ids,
  };
  if (ctx.mv >= 14) {
    view.group_snapshot_id = g.group_snapshot_id;
    view.source_group_id = g.source_group_id;
  }
  if (ctx.mv >= 25 && volumes) view.volumes = volumes;
  if (ctx.mv >= 38) view.replication_status = 'disabled';
  return view;
}

export function groupSnapshotDetail(s: GroupSnapshotRecord) {
  return {
    id: s.id,
    group_id: s.group_id,
    group_type_id: s.group_type_id,
    status: MODELS.group_snapshot.index.statusOf(s.state),
    created_at: timestamp(s.created_at),
    name: s.name,
    description: s.description,
  };
}

/** A reset's status: one of Cinder's, else 400 naming them (the machine then decides what it allows). */
function resetStatusOf(body: Record<string, unknown>, noun: string): string {
  const value = body.reset_status;
  const status = value && typeof value === 'object' ? (value as Record<string, unknown>).status : undefined;
  if (typeof status !== 'string' || !(CINDER_GROUP_STATUSES as readonly string[]).includes(status)) {
    throw new ApiError('InvalidInput', {
      reason: `${noun} status: ${String(status)} is invalid, valid statuses are: (${CINDER_GROUP_STATUSES.map((s) => `'${s}'`).join(', ')}).`,
    });
  }
  return status;
}

function oneAction(body: Record<string, unknown>): string {
  const keys = Object.keys(body);
  if (keys.length !== 1) {
    throw new ApiError('MalformedBody', {
      reason: `an action body has exactly one key, the action; got ${keys.length ? keys.join(', ') : 'none'}`,
    });
  }
  return keys[0]!;
}

export interface GroupRoutesOptions {
  /** a group from a source creates its volumes as volume creates do */
  volumes: VolumeService;
  groupTypes: GroupTypeService;
  groups: GroupService;
  groupSnapshots: GroupSnapshotService;
}

export const groupRoutes: FastifyPluginAsync<GroupRoutesOptions> = async (app, { volumes, groupTypes, groups, groupSnapshots }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const byId = (id: string) => {
    if (!isUuid(id)) throw new ApiError('GroupTypeNotFound', { id });
    return id.toLowerCase();
  };

  // --- group types (3.11) ---

  r.get('/group_types', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    since(req, 11);
    const q = req.query.is_public;
    const admin = req.caller.isAdmin;
    // Cinder: an admin sees public types by default, is_public=None every type; others the public ones.
    const isPublic =
      q === undefined || q === '' ? (admin ? true : undefined) : q.toLowerCase() === 'none' ? undefined : parseBool(q, 'is_public');
    const [key, dir] = (req.query.sort ?? req.query.sort_key ?? 'created_at').split(':');
    if (key !== 'name' && key !== 'created_at' && key !== 'id')
      throw invalid('sort', req.query.sort, 'sort group types by name, created_at or id.');
    const direction = (dir ?? req.query.sort_dir ?? 'asc').toLowerCase();
    if (direction !== 'asc' && direction !== 'desc') throw invalid('sort_dir', direction, "the direction is 'asc' or 'desc'.");
    return { group_types: (await groupTypes.list(admin, isPublic, { key, dir: direction })).map((t) => groupTypeView(t, admin)) };
  });

  r.get('/group_types/default', { schema: { params: ProjectParams } }, async (req) => {
    since(req, 11);
    return { group_type: groupTypeView(await groupTypes.defaultType(), req.caller.isAdmin) };
  });

  r.get('/group_types/:id', { schema: { params: Params } }, async (req) => {
    since(req, 11);
    return { group_type: groupTypeView(await groupTypes.visible(req.params.id, req.caller.isAdmin), req.caller.isAdmin) };
  });

  r.post('/group_types', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types:create');
    const body = unwrap(req.body, 'group_type');
    const row = await groupTypes.create({
      name: groupTypeName(body.name),
      description: parseText(body.description, 'description'),
      is_public: body.is_public === undefined || body.is_public === null ? true : parseBool(body.is_public, 'is_public'),
      group_specs: (body.group_specs === undefined || body.group_specs === null ? {} : groupSpecs(body.group_specs)) as Record<
        string,
        string
      >,
    });
    return reply.code(202).send({ group_type: groupTypeView(row, true) });
  });

  r.put('/group_types/:id', { schema: { params: Params, body: ActionBody } }, async (req) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types:update');
    const body = unwrap(req.body, 'group_type');
    const patch: { name?: string; description?: string | null; is_public?: boolean } = {};
    if (body.name !== undefined) patch.name = groupTypeName(body.name);
    if (body.description !== undefined) patch.description = parseText(body.description, 'description');
    if (body.is_public !== undefined && body.is_public !== null) patch.is_public = parseBool(body.is_public, 'is_public');
    if (Object.keys(patch).length === 0)
      throw new ApiError('InvalidInput', { reason: 'give at least one of name, description, is_public.' });
    return { group_type: groupTypeView(await groupTypes.update(byId(req.params.id), patch), true) };
  });

  r.delete('/group_types/:id', { schema: { params: Params } }, async (req, reply) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types:delete');
    await groupTypes.delete(byId(req.params.id));
    return reply.code(202).send();
  });

  r.get('/group_types/:id/group_specs', { schema: { params: Params } }, async (req) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types_specs');
    return { group_specs: (await groupTypes.visible(byId(req.params.id), true)).group_specs };
  });

  r.post('/group_types/:id/group_specs', { schema: { params: Params, body: ActionBody } }, async (req, reply) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types_specs');
    const specs = groupSpecs(req.body.group_specs);
    await groupTypes.setSpecs(byId(req.params.id), specs);
    return reply.code(202).send({ group_specs: specs });
  });

  r.get('/group_types/:id/group_specs/:key', { schema: { params: Params } }, async (req) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types_specs');
    const type = await groupTypes.visible(byId(req.params.id), true);
    const key = req.params.key!;
    if (!Object.hasOwn(type.group_specs, key)) throw new ApiError('GroupTypeSpecsNotFound', { id: type.id, key });
    return { [key]: type.group_specs[key] };
  });

  r.put('/group_types/:id/group_specs/:key', { schema: { params: Params, body: ActionBody } }, async (req) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types_specs');
    const key = req.params.key!;
    const specs = groupSpecs(req.body, 'group_specs');
    const keys = Object.keys(specs);
    if (keys.length !== 1 || keys[0] !== key) {
      throw new ApiError('InvalidInput', {
        reason: `Request body and URI mismatch: the body must set exactly ${key}; it sets ${keys.join(', ') || 'none'}.`,
      });
    }
    await groupTypes.setSpecs(byId(req.params.id), specs);
    return specs;
  });

  r.delete('/group_types/:id/group_specs/:key', { schema: { params: Params } }, async (req, reply) => {
    since(req, 11);
    requireAdmin(req, 'group:group_types_specs');
    await groupTypes.deleteSpec(byId(req.params.id), req.params.key!);
    return reply.code(202).send();
  });

  // --- groups (3.13) ---

  const list: ListRoute<GroupRecord, Map<string, string[]> | undefined> = {
    collection: 'groups',
    named: false,
    minVersion: 13,
    statuses: GROUP_STATUSES,
    sortKeys: groups.sortKeys,
    filters: (q) => {
      const out: Record<string, string> = {};
      if (q.name !== undefined) out.name = q.name;
      if (q.group_type !== undefined) {
        if (!isUuid(q.group_type)) return null;
        out.group_type_id = q.group_type.toLowerCase();
      }
      return out;
    },
    list: (q) => groups.list(q),
    detail: (g, ctx, members) => groupDetail(g, ctx, members?.get(g.id)),
    summary: (g) => ({ id: g.id, name: g.name }),
  };
  r.get('/groups', { schema: { params: ProjectParams, querystring: Query } }, listHandler(list, false));
  const detailPlain = listHandler(list, true);
  const detailWithVolumes = listHandler({ ...list, load: (rows) => groups.membersOf(rows.map((g) => g.id)) }, true);
  r.get('/groups/detail', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    // 3.25: the member volumes, on request (one query for the page).
    const withVolumes = req.mv >= 25 && req.query.list_volume !== undefined && parseBool(req.query.list_volume, 'list_volume');
    // The list handlers read only the query, which the route's schema checked (a record of strings).
    return (withVolumes ? detailWithVolumes : detailPlain)(req as unknown as FastifyRequest<{ Querystring: Record<string, string> }>);
  });

  r.get('/groups/:id', { schema: { params: IdParams, querystring: Query } }, async (req, reply) => {
    since(req, 13);
    const group = await groups.get(req.caller, groupId(req.params.id));
    const withVolumes = req.mv >= 25 && req.query.list_volume !== undefined && parseBool(req.query.list_volume, 'list_volume');
    stateHeaders(reply, group);
    return { group: groupDetail(group, viewContext(req), withVolumes ? await groups.members(group.id) : undefined) };
  });

  r.post('/groups', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    since(req, 13);
    const body = unwrap(req.body, 'group');
    if (typeof body.group_type !== 'string' || body.group_type === '')
      throw invalid('group_type', body.group_type ?? 'None', 'name the group type (id or name).');
    const types = body.volume_types;
    if (!Array.isArray(types) || types.length === 0 || types.some((t) => typeof t !== 'string' || t === '')) {
      throw invalid('volume_types', types ?? 'None', 'give a list of one or more volume types (ids or names).');
    }
    const input = {
      name: parseText(body.name, 'name'),
      description: parseText(body.description, 'description'),
      groupType: body.group_type,
      volumeTypes: types as string[],
      availabilityZone: parseText(body.availability_zone, 'availability_zone'),
    };
    const group = await changeState(
      req,
      reply,
      () => groups.create(req.caller, input),
      (changes) => groups.get(req.caller, createdBy(changes, 'group')),
    );
    stateHeaders(reply.code(202), group);
    return { group: { id: group.id, name: group.name } };
  });

  // create-from-src (3.14): a route of its own in Cinder's router, POST /groups/action.
  r.post('/groups/action', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    since(req, 14);
    const name = oneAction(req.body);
    if (name !== 'create-from-src') throw new ApiError('NoSuchAction', { action: name });
    const body = unwrap(req.body, 'create-from-src');
    const input = fromSourceInput(body, 'group_snapshot_id', 'source_group_id');
    const group = await changeState(
      req,
      reply,
      () => groups.createFromSource(req.caller, volumes, input),
      (changes) => groups.get(req.caller, createdBy(changes, 'group')),
    );
    stateHeaders(reply.code(202), group);
    return { group: { id: group.id, name: group.name } };
  });

  r.put('/groups/:id', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    since(req, 13);
    const id = groupId(req.params.id);
    const body = unwrap(req.body, 'group');
    const update = {
      ...(body.name !== undefined ? { name: parseText(body.name, 'name') } : {}),
      ...(body.description !== undefined ? { description: parseText(body.description, 'description') } : {}),
      add: volumeList(body.add_volumes, 'add_volumes'),
      remove: volumeList(body.remove_volumes, 'remove_volumes'),
    };
    if (body.name === undefined && body.description === undefined && body.add_volumes === undefined && body.remove_volumes === undefined) {
      throw new ApiError('InvalidInput', { reason: 'give at least one of name, description, add_volumes, remove_volumes.' });
    }
    await changeState(req, reply, () => groups.change(req.caller, id, update));
    return reply.code(202).send();
  });

  r.post('/groups/:id/action', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    since(req, 13);
    const id = groupId(req.params.id);
    const name = oneAction(req.body);
    if (name === 'delete') {
      const args = req.body.delete;
      const flag = args && typeof args === 'object' ? (args as Record<string, unknown>)['delete-volumes'] : undefined;
      const deleteVolumes = flag === undefined || flag === null ? false : parseBool(flag, 'delete-volumes');
      await changeState(req, reply, () => groups.remove(req.caller, id, deleteVolumes));
      return reply.code(202).send();
    }
    if (name === 'reset_status') {
      since(req, 20);
      requireAdmin(req, 'group:reset_status');
      const status = resetStatusOf(req.body, 'Group');
      await changeState(req, reply, () => groups.send(req.caller, id, { type: 'RESET_STATUS', status }));
      return reply.code(202).send();
    }
    throw actionNotImplemented(GROUP_ACTIONS_NOT_IMPLEMENTED, name) ?? new ApiError('NoSuchAction', { action: name });
  });

  r.get('/groups/:id/transitions', { schema: { params: IdParams } }, async (req) => {
    const rows = await groups.history(req.caller, groupId(req.params.id));
    return { transitions: rows.map(transitionView) };
  });

  // --- group snapshots (3.14) ---

  const snapshotList: ListRoute<GroupSnapshotRecord> = {
    collection: 'group_snapshots',
    named: false,
    minVersion: 14,
    statuses: GROUP_SNAPSHOT_STATUSES,
    sortKeys: groupSnapshots.sortKeys,
    filters: (q) => {
      const out: Record<string, string> = {};
      if (q.name !== undefined) out.name = q.name;
      if (q.group_id !== undefined) {
        if (!isUuid(q.group_id)) return null;
        out.group_id = q.group_id.toLowerCase();
      }
      return out;
    },
    list: (q) => groupSnapshots.list(q),
    detail: (s) => groupSnapshotDetail(s),
    summary: (s) => ({ id: s.id, name: s.name }),
  };
  r.get('/group_snapshots', { schema: { params: ProjectParams, querystring: Query } }, listHandler(snapshotList, false));
  r.get('/group_snapshots/detail', { schema: { params: ProjectParams, querystring: Query } }, listHandler(snapshotList, true));

  r.get('/group_snapshots/:id', { schema: { params: IdParams } }, async (req, reply) => {
    since(req, 14);
    const snapshot = await groupSnapshots.get(req.caller, groupSnapshotId(req.params.id));
    stateHeaders(reply, snapshot);
    return { group_snapshot: groupSnapshotDetail(snapshot) };
  });

  r.post('/group_snapshots', { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
    since(req, 14);
    const body = unwrap(req.body, 'group_snapshot');
    if (typeof body.group_id !== 'string') throw invalid('group_id', body.group_id ?? 'None', 'name the group to snapshot (group_id).');
    const input = {
      groupId: groupId(body.group_id),
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
    return { group_snapshot: { id: snapshot.id, name: snapshot.name, group_type_id: snapshot.group_type_id } };
  });

  r.delete('/group_snapshots/:id', { schema: { params: IdParams } }, async (req, reply) => {
    since(req, 14);
    const id = groupSnapshotId(req.params.id);
    await changeState(req, reply, () => groupSnapshots.remove(req.caller, id));
    return reply.code(202).send();
  });

  r.post('/group_snapshots/:id/action', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    since(req, 14);
    const id = groupSnapshotId(req.params.id);
    const name = oneAction(req.body);
    if (name !== 'reset_status') throw new ApiError('NoSuchAction', { action: name });
    since(req, 19);
    requireAdmin(req, 'group:reset_group_snapshot_status');
    const status = resetStatusOf(req.body, 'GroupSnapshot');
    await changeState(req, reply, () => groupSnapshots.send(req.caller, id, { type: 'RESET_STATUS', status }));
    return reply.code(202).send();
  });

  r.get('/group_snapshots/:id/transitions', { schema: { params: IdParams } }, async (req) => {
    const rows = await groupSnapshots.history(req.caller, groupSnapshotId(req.params.id));
    return { transitions: rows.map(transitionView) };
  });
};
