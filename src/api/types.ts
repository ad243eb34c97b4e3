/**
 * /v3[/{project_id}]/types: Cinder's volume types, their extra specs and
 * access (src/services/volume-types.ts). Everybody reads the types visible to their project;
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
 *   GET    /types/{id}/encryption[/{key}]          the type's encryption ({} when none)
 *   POST   /types/{id}/encryption                  {"encryption": {provider, control_location, cipher, key_size}} (admin)
 *   PUT    /types/{id}/encryption/{encryption_id}  (admin)
 *   DELETE /types/{id}/encryption/{encryption_id}  202 (admin); all three refused while a live volume has the type
 *   GET    /default-types[/{project}]              a project's default type (3.62, admin)
 *   PUT    /default-types/{project}                {"default_type": {"volume_type": id or name}} (admin)
 *   DELETE /default-types/{project}                204 (admin)
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.ts';
import type { EncryptionFields, EncryptionRow, TypePatch, VolumeTypeRow, VolumeTypeService } from '../services/volume-types.ts';
import { timestamp } from './views.ts';
import { requireAdmin } from './context.ts';
import { invalid, isUuid, parseBool, parseMetadata, parseText, unwrap } from './parse.ts';
import { ActionBody, ProjectParams, Query } from './schemas.ts';

export interface TypeRoutesOptions {
  types: VolumeTypeService;
}

const Params = Type.Object({ id: Type.String(), key: Type.Optional(Type.String()), project_id: Type.Optional(Type.String()) });

/** The project a lookup is limited to: none for an admin. */
const scope = (req: FastifyRequest) => (req.caller.isAdmin ? undefined : req.caller.projectId);

/** A type as shown by GET (and, without qos_specs_id, by POST). */
function typeView(t: VolumeTypeRow, form: 'show' | 'create' | 'update' = 'show') {
  const view: Record<string, unknown> = {
    id: t.id,
    name: t.name,
    description: t.description,
    is_public: t.is_public,
    extra_specs: t.extra_specs,
  };
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
  if (value === null || value === undefined || typeof value !== 'object' || Array.isArray(value))
    throw invalid(field, value ?? 'None', 'extra specs are an object of strings.');
  return parseMetadata(value, field);
}

export const typeRoutes: FastifyPluginAsync<TypeRoutesOptions> = async (app, { types }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  /** A type the caller may see, by id (or name), else 404. */
  const visible = (req: FastifyRequest, ref: string) => types.visible(ref, scope(req));
  /** A type an admin changes: by id only. */
  const byId = async (id: string) => {
    if (!isUuid(id)) throw new ApiError('VolumeTypeNotFound', { id });
    return types.byId(id);
  };

  r.get('/types', { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
    const q = req.query.is_public;
    // is_public=None (the string) or absent: public and private; true/false: those only. Non-admins see what they may.
    const isPublic = q === undefined || q === '' || q.toLowerCase() === 'none' ? undefined : parseBool(q, 'is_public');
    return { volume_types: (await types.list(scope(req), isPublic)).map((t) => typeView(t)) };
  });

  r.get('/types/:id', { schema: { params: Params } }, async (req) => ({ volume_type: typeView(await visible(req, req.params.id)) }));

  r.post('/types', { schema: { params: ProjectParams, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:types_manage');
    const body = unwrap(req.body, 'volume_type');
    const pub = body['os-volume-type-access:is_public'] ?? body.is_public;
    const row = await types.create({
      name: typeName(body.name),
      description: parseText(body.description, 'description'),
      is_public: pub === undefined || pub === null ? true : parseBool(pub, 'os-volume-type-access:is_public'),
      extra_specs: body.extra_specs === undefined || body.extra_specs === null ? {} : extraSpecs(body.extra_specs),
    });
    return { volume_type: typeView(row, 'create') };
  });

  r.put('/types/:id', { schema: { params: Params, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:types_manage');
    const current = await byId(req.params.id);
    const body = unwrap(req.body, 'volume_type');
    const patch: TypePatch = {};
    if (body.name !== undefined) patch.name = typeName(body.name);
    if (body.description !== undefined) patch.description = parseText(body.description, 'description');
    if (body.is_public !== undefined && body.is_public !== null) patch.is_public = parseBool(body.is_public, 'is_public');
    if (Object.keys(patch).length === 0)
      throw new ApiError('InvalidInput', { reason: 'give at least one of name, description, is_public.' });
    return { volume_type: typeView(await types.update(current, patch), 'update') };
  });

  r.delete('/types/:id', { schema: { params: Params } }, async (req, reply) => {
    requireAdmin(req, 'volume_extension:types_manage');
    await types.delete(await byId(req.params.id));
    return reply.code(202).send();
  });

  r.get('/types/:id/extra_specs', { schema: { params: Params } }, async (req) => ({
    extra_specs: (await visible(req, req.params.id)).extra_specs,
  }));

  r.post('/types/:id/extra_specs', { schema: { params: Params, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:types_extra_specs:create');
    const id = (await byId(req.params.id)).id;
    const specs = extraSpecs(req.body.extra_specs);
    await types.setExtraSpecs(id, specs);
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
      throw new ApiError('InvalidInput', {
        reason: `the body must set exactly the key the URL names (${key}); it sets ${keys.join(', ') || 'none'}.`,
      });
    }
    await types.setExtraSpecs(id, specs);
    return specs;
  });

  r.delete('/types/:id/extra_specs/:key', { schema: { params: Params } }, async (req, reply) => {
    requireAdmin(req, 'volume_extension:types_extra_specs:delete');
    const id = (await byId(req.params.id)).id;
    await types.deleteExtraSpec(id, req.params.key!);
    return reply.code(202).send();
  });

  r.get('/types/:id/os-volume-type-access', { schema: { params: Params } }, async (req) => {
    requireAdmin(req, 'volume_extension:volume_type_access');
    const type = await byId(req.params.id);
    return { volume_type_access: (await types.access(type)).map((project_id) => ({ volume_type_id: type.id, project_id })) };
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
    if (typeof project !== 'string' || project === '')
      throw invalid('project', project ?? 'None', 'name the project to give or take access.');
    await types.setAccess(type, project, action === 'addProjectAccess');
    return reply.code(202).send();
  });

  // Encryption (Cinder's volume type encryption, data only). Changing it is an admin's and refused
  // while a live volume has the type; anyone who sees the type may read it.
  r.get('/types/:id/encryption', { schema: { params: Params } }, async (req) => {
    const type = await visible(req, req.params.id);
    const e = await types.encryption(type.id);
    return e ? encryptionView(e) : {};
  });

  r.get('/types/:id/encryption/:key', { schema: { params: Params } }, async (req) => {
    const type = await visible(req, req.params.id);
    const e = await types.encryption(type.id);
    const key = req.params.key!;
    const view = e ? (encryptionView(e) as Record<string, unknown>) : {};
    if (!e || !Object.hasOwn(view, key)) throw new ApiError('EncryptionSpecNotFound', { id: type.id, key });
    return { [key]: view[key] };
  });

  r.post('/types/:id/encryption', { schema: { params: Params, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:volume_type_encryption:create');
    const body = unwrap(req.body, 'encryption');
    const fields = encryptionFields(body, true) as EncryptionFields;
    const row = (await types.changeEncryption(await typeIdForChange(req.params.id), { create: fields }))!;
    // Cinder echoes the request (key_size as a number) with the ids it added.
    return { encryption: { ...body, ...fields, volume_type_id: row.volume_type_id, encryption_id: row.encryption_id } };
  });

  r.put('/types/:id/encryption/:key', { schema: { params: Params, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:volume_type_encryption:update');
    const body = unwrap(req.body, 'encryption');
    const fields = encryptionFields(body, false);
    await types.changeEncryption(await typeIdForChange(req.params.id), { update: fields });
    return { encryption: { ...body, ...fields } };
  });

  r.delete('/types/:id/encryption/:key', { schema: { params: Params } }, async (req, reply) => {
    requireAdmin(req, 'volume_extension:volume_type_encryption:delete');
    await types.changeEncryption(await typeIdForChange(req.params.id), { delete: true });
    return reply.code(202).send();
  });

  // Project default types (3.62): an admin's; a project's volume created without a type gets its default.
  const DefaultParams = Type.Object({ project: Type.String(), project_id: Type.Optional(Type.String()) });
  const defaultsSince = (req: FastifyRequest, action: string) => {
    if (req.mv < 62) throw new ApiError('NotFound');
    requireAdmin(req, `volume_extension:default_${action}`);
  };
  const defaultView = (d: { project_id: string; volume_type_id: string }) => ({
    project_id: d.project_id,
    volume_type_id: d.volume_type_id,
  });

  r.get('/default-types', { schema: { params: ProjectParams } }, async (req) => {
    defaultsSince(req, 'get_all');
    return { default_types: (await types.defaults()).map(defaultView) };
  });

  r.get('/default-types/:project', { schema: { params: DefaultParams } }, async (req) => {
    defaultsSince(req, 'get');
    const [found] = await types.defaults(req.params.project);
    if (!found) throw new ApiError('VolumeTypeProjectDefaultNotFound', { project: req.params.project });
    return { default_type: defaultView(found) };
  });

  r.put('/default-types/:project', { schema: { params: DefaultParams, body: ActionBody } }, async (req) => {
    defaultsSince(req, 'set_or_update');
    const body = unwrap(req.body, 'default_type');
    if (typeof body.volume_type !== 'string' || body.volume_type === '')
      throw invalid('volume_type', body.volume_type ?? 'None', 'name the volume type (id or name) to make the default.');
    return { default_type: defaultView(await types.setDefault(req.params.project, body.volume_type)) };
  });

  r.delete('/default-types/:project', { schema: { params: DefaultParams } }, async (req, reply) => {
    defaultsSince(req, 'unset');
    await types.unsetDefault(req.params.project);
    return reply.code(204).send();
  });

  /** The type an admin changes the encryption of: by id, else 404. */
  async function typeIdForChange(id: string): Promise<string> {
    return (await byId(id)).id;
  }
};

/** A type's encryption as GET shows it: Cinder's row, never deleted (volstate deletes the row). */
function encryptionView(e: EncryptionRow) {
  return {
    volume_type_id: e.volume_type_id,
    encryption_id: e.encryption_id,
    provider: e.provider,
    cipher: e.cipher,
    key_size: e.key_size,
    control_location: e.control_location,
    created_at: timestamp(e.created_at),
    updated_at: timestamp(e.updated_at),
    deleted_at: null,
    deleted: false,
  };
}

/** Cinder's encryption schema: provider and control_location required to create; cipher a string or null; key_size a non-negative integer or null. */
function encryptionFields(body: Record<string, unknown>, create: boolean): Partial<EncryptionFields> {
  const out: Partial<EncryptionFields> = {};
  if (body.provider !== undefined || create) {
    if (typeof body.provider !== 'string' || body.provider === '' || body.provider.length > 255)
      throw invalid('provider', body.provider ?? 'None', 'name the encryption provider (e.g. luks), 1 to 255 characters.');
    out.provider = body.provider;
  }
  if (body.control_location !== undefined || create) {
    if (body.control_location !== 'front-end' && body.control_location !== 'back-end')
      throw invalid('control_location', body.control_location ?? 'None', "control_location is 'front-end' or 'back-end'.");
    out.control_location = body.control_location;
  }
  if (body.cipher !== undefined) {
    if (body.cipher !== null && (typeof body.cipher !== 'string' || body.cipher.length > 255))
      throw invalid('cipher', body.cipher, 'cipher is a string of up to 255 characters, or null.');
    out.cipher = body.cipher;
  }
  if (body.key_size !== undefined) {
    const n = typeof body.key_size === 'string' && /^\d+$/.test(body.key_size) ? Number(body.key_size) : body.key_size;
    if (n !== null && (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0 || n > 2 ** 31 - 1))
      throw invalid('key_size', body.key_size, 'key_size is a non-negative whole number of bits, or null.');
    out.key_size = n;
  }
  return out;
}
