/**
 * /v3[/{project_id}]/qos-specs: Cinder's QoS specs, admin only (src/services/qos.ts).
 * Data: volstate's backends enforce no QoS; the specs are kept, associated
 * with volume types, and shown to whoever reads them.
 *
 *   POST   /qos-specs                         {"qos_specs": {name, consumer, <key>: <value>…}}
 *   GET    /qos-specs, /qos-specs/{id}
 *   PUT    /qos-specs/{id}                    {"qos_specs": {<key>: <value>…}} merged in
 *   PUT    /qos-specs/{id}/delete_keys        {"keys": [...]}
 *   DELETE /qos-specs/{id}[?force=True]       400 while types are associated, unless forced
 *   GET    /qos-specs/{id}/associations
 *   GET    /qos-specs/{id}/associate?vol_type_id=T, /disassociate?vol_type_id=T, /disassociate_all
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.ts';
import type { QosRow, QosService } from '../services/qos.ts';
import { requireAdmin } from './context.ts';
import { invalid, isUuid, parseBool, parseMetadata, parseText, unwrap } from './parse.ts';
import { ActionBody, ProjectParams, Query } from './schemas.ts';

export interface QosRoutesOptions {
  qos: QosService;
}

const Params = Type.Object({ id: Type.String(), project_id: Type.Optional(Type.String()) });
const CONSUMERS = ['front-end', 'back-end', 'both'];

const view = (q: QosRow) => ({ id: q.id, name: q.name, consumer: q.consumer, specs: q.specs });

function links(req: FastifyRequest, id: string) {
  const p = req.urlProject ? `/${req.urlProject}` : '';
  const base = `${req.protocol}://${req.host}`;
  return [
    { rel: 'self', href: `${base}/v3${p}/qos-specs/${id}` },
    { rel: 'bookmark', href: `${base}${p}/qos-specs/${id}` },
  ];
}

export const qosRoutes: FastifyPluginAsync<QosRoutesOptions> = async (app, { qos }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();
  app.addHook('onRequest', async (req) => {
    requireAdmin(req, 'volume_extension:qos_specs_manage');
  });
  const existing = async (id: string) => {
    if (!isUuid(id)) throw new ApiError('QosSpecsNotFound', { id });
    return qos.get(id.toLowerCase());
  };
  const typeOf = (q: Record<string, string>) => {
    const id = q.vol_type_id;
    if (id === undefined || id === '') throw invalid('vol_type_id', 'None', 'name the volume type with ?vol_type_id=.');
    if (!isUuid(id)) throw new ApiError('VolumeTypeNotFound', { id });
    return id.toLowerCase();
  };

  r.post('/qos-specs', { schema: { params: ProjectParams, body: ActionBody } }, async (req) => {
    const { name, consumer, ...rest } = unwrap(req.body, 'qos_specs');
    const text = parseText(name, 'name');
    if (text === null || text.trim() === '') throw invalid('name', name ?? 'None', 'QoS specs need a name of 1 to 255 characters.');
    if (consumer !== undefined && (typeof consumer !== 'string' || !CONSUMERS.includes(consumer))) {
      throw invalid('consumer', consumer, `the consumer is one of ${CONSUMERS.join(', ')}.`);
    }
    const row = await qos.create({ name: text, consumer: consumer ?? 'back-end', specs: parseMetadata(rest, 'qos_specs') });
    return { qos_specs: view(row), links: links(req, row.id) };
  });

  r.get('/qos-specs', { schema: { params: ProjectParams, querystring: Query } }, async () => ({ qos_specs: (await qos.list()).map(view) }));

  r.get('/qos-specs/:id', { schema: { params: Params } }, async (req) => {
    const q = await existing(req.params.id);
    return { qos_specs: view(q), links: links(req, q.id) };
  });

  r.put('/qos-specs/:id', { schema: { params: Params, body: ActionBody } }, async (req) => {
    const q = await existing(req.params.id);
    const specs = parseMetadata(unwrap(req.body, 'qos_specs'), 'qos_specs');
    if (Object.keys(specs).length === 0) throw invalid('qos_specs', {}, 'give at least one key to set.');
    await qos.setKeys(q.id, specs);
    return { qos_specs: specs };
  });

  r.put('/qos-specs/:id/delete_keys', { schema: { params: Params, body: ActionBody } }, async (req, reply) => {
    const q = await existing(req.params.id);
    const keys = req.body.keys;
    if (!Array.isArray(keys) || keys.length === 0 || !keys.every((k) => typeof k === 'string'))
      throw invalid('keys', keys ?? 'None', 'give a list of the keys to remove.');
    await qos.deleteKeys(q, keys);
    return reply.code(202).send();
  });

  r.delete('/qos-specs/:id', { schema: { params: Params, querystring: Query } }, async (req, reply) => {
    const q = await existing(req.params.id);
    const force = req.query.force !== undefined && parseBool(req.query.force, 'force');
    await qos.delete(q.id, force);
    return reply.code(202).send();
  });

  r.get('/qos-specs/:id/associations', { schema: { params: Params } }, async (req) => {
    const q = await existing(req.params.id);
    return { qos_associations: (await qos.associations(q.id)).map((t) => ({ association_type: 'volume_type', id: t.id, name: t.name })) };
  });

  for (const [path, on] of [
    ['associate', true],
    ['disassociate', false],
  ] as const) {
    r.get(`/qos-specs/:id/${path}`, { schema: { params: Params, querystring: Query } }, async (req, reply) => {
      const q = await existing(req.params.id);
      const typeId = typeOf(req.query);
      await qos.associate(q.id, typeId, on);
      return reply.code(202).send();
    });
  }

  r.get('/qos-specs/:id/disassociate_all', { schema: { params: Params } }, async (req, reply) => {
    const q = await existing(req.params.id);
    await qos.disassociateAll(q.id);
    return reply.code(202).send();
  });
};
