/**
 * /v3[/{project_id}]/types: Cinder's volume types, their extra specs and
 * access (db/volume-types.ts). Everybody reads the types visible to their project;
 * creating, changing and deleting them is an admin's.
 *
 *   GET    /types, /types/default, /types/{id}
 *   POST   /types                                  {"volume_type": {name, description, extra_specs, os-volume-type-access:is_public}}
 *   PUT    /types/{id}                             {"volume_type": {name, description, is_public}}
 *   DELETE /types/{id}                             202; 400 while a live volume uses it
 *   GET    /types/{id}/extra_specs[/{key}]
 *   POST   /types/{id}/extra_specs                 {"extra_specs": {...}} merged in
 *   PUT    /types/{id}/extra_specs/{key}           {key: value}
 *   DELETE /types/{id}/extra_specs/{key}           202
 *   GET    /types/{id}/os-volume-type-access       private types only
 *   POST   /types/{id}/action                      addProjectAccess / removeProjectAccess {"project": P}
 *   GET    /types/{id}/encryption                  {} (volstate encrypts nothing; the rest of the encryption API is 404)
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import type { Sql } from '../../db/connect.ts';
import { transaction } from '../../db/tx.ts';
import {
  changeExtraSpecs,
  DEFAULT_TYPE,
  deleteType,
  findType,
  insertType,
  listTypes,
  setTypeAccess,
  typeAccess,
  updateType,
  type VolumeTypeRow,
} from '../../db/volume-types.ts';
import { ApiError } from '../errors.ts';
import { requireAdmin } from './context.ts';
import { invalid, isUuid, parseBool, parseMetadata, parseText, unwrap } from './parse.ts';
import { ActionBody, ProjectParams, Query } from './schemas.ts';

export interface TypeRoutesOptions {
  sql: Sql;
}

const Params = Type.Object({ id: Type.String(), key: Type.Optional(Type.String()), project_id: Type.Optional(Type.String()) });

/** The project a lookup is limited to: none for an admin. */
const scope = (req: FastifyRequest) => (req.caller.isAdmin ? undefined : req.caller.projectId);

/** A type as shown by GET (and, without qos_specs_id, by POST). */
function typeView(t: VolumeTypeRow, form: 'show' | 'create' | 'update' = 'show') {
  const view: Record<string, unknown> = { id: t.id, name: t.name, description: t.description, is_public: t.is_public, extra_specs: t.extra_specs };
  if (form !== 'update') view['os-volume-type-access:is_public'] = t.is_public;
  if (form === 'show') view.qos_specs_id = t.qos_specs_id;
  return view;
}

function typeName(value: unknown): string {
  const name = parseText(value, 'name');
  if (name === null || name.trim() === '') throw invalid('name', value ?? 'None', 'a volume type needs a name of 1 to 255 characters.');
  return name;
}

/** Extra specs: string keys and values, as metadata. */
function extraSpecs(value: unknown, field = 'extra_specs'): Record<string, string> {
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value)) throw invalid(field, value ?? 'None', 'extra specs are an object of strings.');
  return parseMetadata(value, field);
}

export const typeRoutes: FastifyPluginAsync<TypeRoutesOptions> = async (app, { sql }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  /** A type the caller may see, by id (or name), else 404. */
  const visible = async (req: FastifyRequest, ref: string) => {
    const found = ref === 'default' ? await findType(sql, DEFAULT_TYPE, undefined) : await findType(sql, ref, scope(req));
    if (!found) throw new ApiError('VolumeTypeNotFound', { id: ref });
    return found;
  };
  /** A type an admin changes: by id only. */
  const byId = async (id: string) => {
    if (!isUuid(id)) throw new ApiError('VolumeTypeNotFound', { id });
    const found = await findType(sql, id, undefined);
    if (!found) throw new ApiError('VolumeTypeNotFound', { id });
    return found;
  };

  r.get('/types', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    const q = req.query.is_public;
    // is_public=None (the string) or absent: public and private; true/false: those only. Non-admins see what they may.
    const isPublic = q === undefined || q === '' || q.toLowerCase() === 'none' ? undefined : parseBool(q, 'is_public');
    return { volume_types: (await listTypes(sql, scope(req), isPublic)).map((t) => typeView(t)) };
  });

  r.get('/types/:id', { schema: { params: Params } }, async (req) => ({ volume_type: typeView(await visible(req, req.params.id)) }));

  r.post('/types', { schema: { params: ProjectParams, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:types_manage');
    const body = unwrap(req.body, 'volume_type');
    const pub = body['os-volume-type-access:is_public'] ?? body.is_public;
    const row: VolumeTypeRow = {
      id: randomUUID(),
      name: typeName(body.name),
      description: parseText(body.description, 'description'),
      is_public: pub === undefined || pub === null ? true : parseBool(pub, 'os-volume-type-access:is_public'),
      extra_specs: body.extra_specs === undefined || body.extra_specs === null ? {} : extraSpecs(body.extra_specs),
      qos_specs_id: null,
    };
    if (!(await insertType(sql, row))) throw new ApiError('VolumeTypeExists', { name: row.name });
    return { volume_type: typeView(row, 'create') };
  });

  r.put('/types/:id', { schema: { params: Params, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:types_manage');
    const current = await byId(req.params.id);
    const body = unwrap(req.body, 'volume_type');
    const patch: { name?: string; description?: string | null; is_public?: boolean } = {};
    if (body.name !== undefined) patch.name = typeName(body.name);
    if (body.description !== undefined) patch.description = parseText(body.description, 'description');
    if (body.is_public !== undefined && body.is_public !== null) patch.is_public = parseBool(body.is_public, 'is_public');
    if (Object.keys(patch).length === 0) throw new ApiError('InvalidInput', { reason: 'give at least one of name, description, is_public.' });
    if (current.name === DEFAULT_TYPE && patch.name !== undefined && patch.name !== DEFAULT_TYPE) {
      throw new ApiError('InvalidInput', { reason: `the default type ${DEFAULT_TYPE} keeps its name.` });
    }
    const updated = await transaction(sql, { rows: [] }, (tx) => updateType(tx, current.id, patch));
    if (updated === 'taken') throw new ApiError('VolumeTypeExists', { name: patch.name });
    if (!updated) throw new ApiError('VolumeTypeNotFound', { id: req.params.id });
    return { volume_type: typeView(updated, 'update') };
  });

  r.delete('/types/:id', { schema: { params: Params } }, async (req, reply) => {
    requireAdmin(req, 'volume_extension:types_manage');
    const current = await byId(req.params.id);
    if (current.name === DEFAULT_TYPE) throw new ApiError('InvalidVolumeType', { reason: `the default type ${DEFAULT_TYPE} cannot be deleted` });
    const outcome = await transaction(sql, { rows: [] }, (tx) => deleteType(tx, current.id));
    if (outcome === 'missing') throw new ApiError('VolumeTypeNotFound', { id: req.params.id });
    if (outcome === 'in-use') throw new ApiError('VolumeTypeInUse', { id: current.id });
    return reply.code(202).send();
  });

  r.get('/types/:id/extra_specs', { schema: { params: Params } }, async (req) => ({ extra_specs: (await visible(req, req.params.id)).extra_specs }));

  r.post('/types/:id/extra_specs', { schema: { params: Params, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:types_extra_specs:create');
    const id = (await byId(req.params.id)).id;
    const specs = extraSpecs(req.body.extra_specs);
    if ((await changeExtraSpecs(sql, id, { merge: specs })) === undefined) throw new ApiError('VolumeTypeNotFound', { id });
    return { extra_specs: specs };
  });

  r.get('/types/:id/extra_specs/:key', { schema: { params: Params } }, async (req) => {
    const type = await visible(req, req.params.id);
    const key = req.params.key!;
    if (!Object.hasOwn(type.extra_specs, key)) throw new ApiError('ExtraSpecNotFound', { id: type.id, key });
    return { [key]: type.extra_specs[key] };
  });

  r.put('/types/:id/extra_specs/:key', { schema: { params: Params, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:types_extra_specs:update');
    const id = (await byId(req.params.id)).id;
    const key = req.params.key!;
    const specs = extraSpecs(req.body, 'extra_specs');
    const keys = Object.keys(specs);
    if (keys.length !== 1 || keys[0] !== key) {
      throw new ApiError('InvalidInput', { reason: `the body must set exactly the key the URL names (${key}); it sets ${keys.join(', ') || 'none'}.` });
    }
    if ((await changeExtraSpecs(sql, id, { merge: specs })) === undefined) throw new ApiError('VolumeTypeNotFound', { id });
    return specs;
  });

  r.delete('/types/:id/extra_specs/:key', { schema: { params: Params } }, async (req, reply) => {
    requireAdmin(req, 'volume_extension:types_extra_specs:delete');
    const id = (await byId(req.params.id)).id;
    const out = await changeExtraSpecs(sql, id, { remove: req.params.key! });
    if (out === undefined) throw new ApiError('VolumeTypeNotFound', { id });
    if (out === null) throw new ApiError('ExtraSpecNotFound', { id, key: req.params.key! });
    return reply.code(202).send();
  });

  r.get('/types/:id/os-volume-type-access', { schema: { params: Params } }, async (req) => {
    requireAdmin(req, 'volume_extension:volume_type_access');
    const type = await byId(req.params.id);
    if (type.is_public) throw new ApiError('NoAccessList', { id: type.id });
    return { volume_type_access: (await typeAccess(sql, type.id)).map((project_id) => ({ volume_type_id: type.id, project_id })) };
  });

  r.post('/types/:id/action', { schema: { params: Params, body: ActionBody } }, async (req, reply) => {
    const keys = Object.keys(req.body);
    const action = keys[0];
    if (keys.length !== 1 || (action !== 'addProjectAccess' && action !== 'removeProjectAccess')) {
      throw new ApiError('NoSuchAction', { action: keys.join(', ') || 'none' });
    }
    requireAdmin(req, `volume_extension:volume_type_access:${action}`);
    const type = await byId(req.params.id);
    const project = unwrap(req.body, action).project;
    if (typeof project !== 'string' || project === '') throw invalid('project', project ?? 'None', 'name the project to give or take access.');
    if (type.is_public) throw new ApiError('InvalidVolumeType', { reason: 'type access modification is not applicable to a public volume type' });
    const changed = await setTypeAccess(sql, type.id, project, action === 'addProjectAccess');
    if (!changed && action === 'addProjectAccess') throw new ApiError('VolumeTypeAccessExists', { id: type.id, project });
    if (!changed) throw new ApiError('VolumeTypeAccessNotFound', { id: type.id, project });
    return reply.code(202).send();
  });

  // volstate encrypts no volume: every type's encryption is none.
  r.get('/types/:id/encryption', { schema: { params: Params } }, async (req) => {
    await visible(req, req.params.id);
    return {};
  });
};
