/**
 * Metadata sub-resources of volumes and snapshots, as Cinder has them (the
 * cinder CLI's `metadata set/unset`, OSC's `--property`, the SDK):
 *
 *   GET    /{collection}/{id}/metadata          {"metadata": {...}}
 *   POST   /{collection}/{id}/metadata          merge keys in     → the whole metadata
 *   PUT    /{collection}/{id}/metadata          replace the whole → the whole metadata
 *   GET    /{collection}/{id}/metadata/{key}    {"meta": {key: value}}
 *   PUT    /{collection}/{id}/metadata/{key}    {"meta": {key: value}} (one key, the URL's)
 *   DELETE /{collection}/{id}/metadata/{key}    200, empty
 *
 * Each change is one UPDATE (db/resources.ts changeMetadata): concurrent
 * clients setting different keys both keep theirs.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.ts';
import type { Caller } from '../services/caller.ts';
import { invalid, parseMetadata, unwrap } from './parse.ts';
import { ActionBody } from './schemas.ts';

interface MetadataService {
  metadata(caller: Caller, id: string): Promise<Record<string, string>>;
  changeMetadata(
    caller: Caller,
    id: string,
    change: { merge: Record<string, string> } | { replace: Record<string, string> } | { remove: string },
  ): Promise<Record<string, string>>;
}

export interface MetadataRoutesOptions {
  collection: 'volumes' | 'snapshots';
  service: MetadataService;
  /** the id from the URL, checked (a non-UUID is the resource's 404) */
  idOf: (raw: string) => string;
}

const Params = Type.Object({ id: Type.String(), key: Type.Optional(Type.String()), project_id: Type.Optional(Type.String()) });

export const metadataRoutes: FastifyPluginAsync<MetadataRoutesOptions> = async (app, { collection, service, idOf }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  const base = `/${collection}/:id/metadata`;

  r.get(base, { schema: { params: Params } }, async (req) => ({ metadata: await service.metadata(req.caller, idOf(req.params.id)) }));

  r.post(base, { schema: { params: Params, body: ActionBody } }, async (req) => {
    const id = idOf(req.params.id);
    const metadata = parseMetadata(unwrap({ metadata: req.body.metadata }, 'metadata'));
    return { metadata: await service.changeMetadata(req.caller, id, { merge: metadata }) };
  });

  r.put(base, { schema: { params: Params, body: ActionBody } }, async (req) => {
    const id = idOf(req.params.id);
    const metadata = parseMetadata(unwrap({ metadata: req.body.metadata }, 'metadata'));
    return { metadata: await service.changeMetadata(req.caller, id, { replace: metadata }) };
  });

  r.get(`${base}/:key`, { schema: { params: Params } }, async (req) => {
    const id = idOf(req.params.id);
    const key = req.params.key!;
    const metadata = await service.metadata(req.caller, id);
    if (!Object.hasOwn(metadata, key)) throw new ApiError('MetadataNotFound', { id, key });
    return { meta: { [key]: metadata[key] } };
  });

  r.put(`${base}/:key`, { schema: { params: Params, body: ActionBody } }, async (req) => {
    const id = idOf(req.params.id);
    const key = req.params.key!;
    const meta = parseMetadata(unwrap({ meta: req.body.meta }, 'meta'), 'meta');
    const keys = Object.keys(meta);
    if (keys.length !== 1) throw invalid('meta', req.body.meta, 'give exactly one key, the one the URL names.');
    if (keys[0] !== key) throw new ApiError('InvalidInput', { reason: `the key in the body (${keys[0]}) is not the URL's (${key}).` });
    await service.changeMetadata(req.caller, id, { merge: meta });
    return { meta };
  });

  r.delete(`${base}/:key`, { schema: { params: Params } }, async (req, reply) => {
    await service.changeMetadata(req.caller, idOf(req.params.id), { remove: req.params.key! });
    return reply.code(200).send();
  });
};
