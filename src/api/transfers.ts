/**
 * Volume transfers (src/services/transfers.ts), at both of Cinder's paths:
 * `/os-volume-transfer` (every microversion) and `/volume-transfers`
 * (3.55 and later; `no_snapshots` from 3.55, the offer's projects and
 * `accepted` from 3.57).
 *
 *   POST   /{path}                  {"transfer": {volume_id, name?, no_snapshots?}}   202, with the auth key (shown once)
 *   GET    /{path}, /{path}/detail  the project's offers (?all_tenants for an admin)
 *   GET    /{path}/{id}
 *   POST   /{path}/{id}/accept      {"accept": {"auth_key": K}}                       202; any project with the key
 *   DELETE /{path}/{id}                                                              202; the volume is available again
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.ts';
import { newAuthKey, type TransferRow, type TransferService } from '../services/transfers.ts';
import { changeState } from './changes.ts';
import { invalid, isUuid, parseBool, parseLimit, parseText, unwrap } from './parse.ts';
import { ActionBody, ProjectParams, Query } from './schemas.ts';
import { timestamp } from './views.ts';

export interface TransferRoutesOptions {
  transfers: TransferService;
}

const Params = Type.Object({ id: Type.String(), project_id: Type.Optional(Type.String()) });

/** The paths and the first microversion that has each. */
const PATHS = [
  { path: 'os-volume-transfer', since: 0 },
  { path: 'volume-transfers', since: 55 },
] as const;

function links(req: FastifyRequest, path: string, id: string) {
  const p = req.urlProject ? `/${req.urlProject}` : '';
  const base = `${req.protocol}://${req.host}`;
  return [
    { rel: 'self', href: `${base}/v3${p}/${path}/${id}` },
    { rel: 'bookmark', href: `${base}${p}/${path}/${id}` },
  ];
}

function summary(req: FastifyRequest, path: string, t: TransferRow) {
  return { id: t.id, name: t.name, volume_id: t.volume_id, links: links(req, path, t.id) };
}

/** Cinder's detail view, by microversion. An offer shown is never accepted yet: accepting ends it. */
function detail(req: FastifyRequest, path: string, t: TransferRow) {
  return {
    id: t.id,
    created_at: timestamp(t.created_at),
    name: t.name,
    volume_id: t.volume_id,
    links: links(req, path, t.id),
    ...(req.mv >= 55 ? { no_snapshots: t.no_snapshots } : {}),
    ...(req.mv >= 57 ? { destination_project_id: null, source_project_id: t.source_project_id, accepted: false } : {}),
  };
}

const uuidOr404 = (id: string) => {
  if (!isUuid(id)) throw new ApiError('TransferNotFound', { id });
  return id.toLowerCase();
};

export const transferRoutes: FastifyPluginAsync<TransferRoutesOptions> = async (app, { transfers }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  for (const { path, since } of PATHS) {
    const available = (req: FastifyRequest) => {
      if (req.mv < since) throw new ApiError('NotFound', {});
    };

    r.post(`/${path}`, { schema: { params: ProjectParams, body: ActionBody } }, async (req, reply) => {
      available(req);
      const body = unwrap(req.body, 'transfer');
      const volumeId = body.volume_id;
      if (volumeId === undefined || volumeId === null) throw invalid('volume_id', 'None', 'name the volume to transfer.');
      if (typeof volumeId !== 'string' || !isUuid(volumeId)) throw invalid('volume_id', volumeId, 'it must be a volume id (a UUID).');
      const input = {
        id: randomUUID(),
        authKey: newAuthKey(),
        volumeId: volumeId.toLowerCase(),
        name: parseText(body.name ?? body.display_name, 'name'),
        // Before 3.55 the snapshots always go with the volume.
        noSnapshots:
          req.mv >= 55 && body.no_snapshots !== undefined && body.no_snapshots !== null
            ? parseBool(body.no_snapshots, 'no_snapshots')
            : false,
      };
      const made = await changeState(
        req,
        reply,
        () => transfers.create(req.caller, input),
        // Committed though the connection was lost: the key is still ours to tell.
        async () => {
          const t = await transfers.find(input.id);
          if (!t) throw new ApiError('ChangedUnread', { what: `transfer ${input.id} created, and since ended` });
          return t;
        },
      );
      void reply.code(202);
      return { transfer: { ...detail(req, path, made), auth_key: input.authKey } };
    });

    for (const suffix of ['', '/detail'] as const) {
      r.get(`/${path}${suffix}`, { schema: { params: ProjectParams, querystring: Query } }, async (req) => {
        available(req);
        const allTenants = req.query.all_tenants !== undefined && /^(1|t|true|on|y|yes)$/i.test(req.query.all_tenants);
        const rows = await transfers.list(req.caller, allTenants, parseLimit(req.query.limit));
        return { transfers: rows.map((t) => (suffix === '' ? summary(req, path, t) : detail(req, path, t))) };
      });
    }

    r.get(`/${path}/:id`, { schema: { params: Params } }, async (req) => {
      available(req);
      return { transfer: detail(req, path, await transfers.get(req.caller, uuidOr404(req.params.id))) };
    });

    r.post(`/${path}/:id/accept`, { schema: { params: Params, body: ActionBody } }, async (req, reply) => {
      available(req);
      const id = uuidOr404(req.params.id);
      const body = unwrap(req.body, 'accept');
      if (typeof body.auth_key !== 'string' || body.auth_key === '')
        throw invalid('auth_key', body.auth_key ?? 'None', 'give the auth key the transfer was created with.');
      const key = body.auth_key;
      const t = await changeState(
        req,
        reply,
        () => transfers.accept(req.caller, id, key),
        async () => {
          throw new ApiError('ChangedUnread', { what: `transfer ${id} accepted` });
        },
      );
      void reply.code(202);
      return { transfer: summary(req, path, t) };
    });

    r.delete(`/${path}/:id`, { schema: { params: Params } }, async (req, reply) => {
      available(req);
      const id = uuidOr404(req.params.id);
      await changeState(req, reply, () => transfers.cancel(req.caller, id));
      return reply.code(202).send();
    });
  }
};
