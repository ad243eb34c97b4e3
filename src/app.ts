/**
 * The Fastify application. `build()` returns an app that never listens:
 * src/server.ts owns the process (database, worker, listening, signals),
 * tests call `app.inject()` or listen on a port of their own. Plugins are
 * registered explicitly, here, in order.
 *
 * Routes: the version documents at `/`, `/v3`, `/v3/` (no auth, no
 * microversion); the resource routes twice, at `/v3/...` (project from the
 * token) and `/v3/{project_id}/...`, under the request context hooks.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import Fastify, { LogController, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import type { Sql } from '../db/connect.ts';
import { checkBody, checkParameters } from './api/hostile.ts';
import { requestContext, type AuthOptions } from './api/context.ts';
import { attachmentRoutes } from './api/attachments.ts';
import { diagramRoutes } from './api/diagrams.ts';
import { uiRoutes } from './api/ui.ts';
import { eventRoutes } from './api/events.ts';
import { TransitionTail } from './events.ts';
import { healthRoutes } from './api/health.ts';
import { metrics } from './metrics.ts';
import type { Worker } from './worker/worker.ts';
import { BODY_LIMIT, errorHandling, frameworkError, MAX_PARAM_LENGTH } from './api/errors.ts';
import { versionDocument } from './api/microversion.ts';
import { openApiDocument, type RouteEntry } from './api/openapi/document.ts';
import { openApiPage } from './api/openapi/page.ts';
import { snapshotId, snapshotRoutes } from './api/snapshots.ts';
import { backupRoutes } from './api/backups.ts';
import { adminRoutes } from './api/admin.ts';
import { Backends } from './drivers/backends.ts';
import { typeRoutes } from './api/types.ts';
import { qosRoutes } from './api/qos.ts';
import { transferRoutes } from './api/transfers.ts';
import { messageRoutes } from './api/messages.ts';
import { TransferService } from './services/transfers.ts';
import { quotaRoutes } from './api/quotas.ts';
import { metadataRoutes } from './api/metadata.ts';
import { volumeActionRoutes } from './api/volume-actions.ts';
import { volumeId, volumeRoutes } from './api/volumes.ts';
import { groupRoutes } from './api/groups.ts';
import { notImplementedRoutes } from './api/not-implemented.ts';
import { consistencyGroupRoutes } from './api/consistency-groups.ts';
import type { Driver } from './drivers/driver.ts';
import { Enforcer } from './enforcer.ts';
import { ApiError } from './errors.ts';
import { requestLog } from './logging.ts';
import { Waits } from './waiting.ts';
import { AttachmentService } from './services/attachments.ts';
import { SnapshotService } from './services/snapshots.ts';
import { BackupService } from './services/backups.ts';
import { VolumeService } from './services/volumes.ts';
import { VolumeTypeService } from './services/volume-types.ts';
import { GroupService, GroupSnapshotService } from './services/groups.ts';
import { GroupTypeService } from './services/group-types.ts';
import { QosService } from './services/qos.ts';
import { QuotaService } from './services/quotas.ts';
import { MessageService } from './services/messages.ts';
import { HostService } from './services/hosts.ts';
import { StatusService } from './services/status.ts';
import { ChangeOutcomes } from './services/outcomes.ts';

export interface AppOptions {
  sql: Sql;
  enforcer?: Enforcer;
  /** the backends, for the calls made in requests (connections, pools), or one driver (a single backend named after it) */
  driver: Driver | Backends;
  auth: AuthOptions;
  logger?: FastifyServerOptions['logger'];
  /** how long a change whose connection was lost waits for the database to tell whether it committed; default 10 s */
  inDoubtMs?: number;
  /** this node's worker, when it runs one: /readyz checks its heartbeat (fresher than heartbeatTimeoutMs), /metrics reports it */
  worker?: () => Worker | undefined;
  heartbeatTimeoutMs?: number;
  /** the host this node's services are listed under (VOLSTATE_HOST); a volume's `os-vol-host-attr:host` is `<it>@<backend>#<backend>` */
  serviceHost?: string;
  /** VOLSTATE_DEFAULT_GROUP_TYPE: the group type GET /group_types/default names (Cinder's default_group_type); unset: 404 */
  defaultGroupType?: string | undefined;
}

export async function build(opts: AppOptions): Promise<FastifyInstance> {
  const app = Fastify({
    logger: opts.logger ?? false,
    genReqId: () => `req-${randomUUID()}`,
    // One line per request, from src/logging.ts, instead of Fastify's two.
    logController: new LogController({ disableRequestLogging: true }),
    requestIdHeader: false,
    bodyLimit: BODY_LIMIT,
    frameworkErrors: frameworkError,
    // Values are checked by src/api/parse.ts with Cinder's leniency; the
    // schemas declare shapes and must not coerce or strip anything.
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false } },
    // A trailing slash is not ignored: `GET /volumes/` is a show with an empty id, 404 as in Cinder.
    routerOptions: { ignoreTrailingSlash: false, maxParamLength: MAX_PARAM_LENGTH },
  });
  // Every route as registered, for the OpenAPI document (src/api/openapi/).
  const routes: RouteEntry[] = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url, schema: r.schema });
  });
  const enforcer = opts.enforcer ?? new Enforcer();
  const volumes = new VolumeService(opts.sql, enforcer);
  const snapshots = new SnapshotService(opts.sql, enforcer);
  const transfers = new TransferService(opts.sql, enforcer);
  const backups = new BackupService(opts.sql, enforcer, volumes);
  const groupTypes = new GroupTypeService(opts.sql, opts.defaultGroupType);
  const groups = new GroupService(opts.sql, enforcer);
  const groupSnapshots = new GroupSnapshotService(opts.sql, enforcer);
  const backends = opts.driver instanceof Backends ? opts.driver : Backends.single(opts.driver);
  const attachments = new AttachmentService(opts.sql, enforcer, backends);
  const waits = new Waits(opts.sql);
  const tail = new TransitionTail(opts.sql);
  app.decorate('waits', waits);
  const status = new StatusService(opts.sql);
  app.decorate('changes', new ChangeOutcomes(opts.sql, opts.inDoubtMs ?? 10_000));
  app.addHook('onReady', () => waits.start());
  app.addHook('onClose', () => waits.stop());
  app.addHook('onClose', () => tail.stop());

  errorHandling(app);
  requestLog(app);
  // JSON bodies only, with an empty body allowed (clients send the JSON
  // content type on bodiless DELETEs); a parse error is a 400. One rule for
  // every other content type (text/plain, XML, forms): 415, as Cinder
  // answers; Fastify's own text/plain parser would hand the route a string.
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    if (body === '') return done(null, undefined);
    let parsed: unknown;
    try {
      parsed = JSON.parse(body as string);
    } catch (err) {
      return done(new ApiError('MalformedBody', { reason: (err as Error).message }), undefined);
    }
    try {
      checkBody(parsed);
    } catch (err) {
      return done(err as ApiError, undefined);
    }
    done(null, parsed);
  });
  // Before any route reads them: no parameter may hold what cannot be stored.
  app.addHook('onRequest', async (req) => {
    checkParameters('path', (req.params ?? {}) as Record<string, unknown>);
    checkParameters('query parameter', (req.query ?? {}) as Record<string, unknown>);
  });
  app.addHook('onSend', async (req, reply) => {
    // cinderclient shows x-compute-request-id in its error lines and
    // forwards x-openstack-request-id on a command's later requests.
    void reply.header('x-openstack-request-id', req.id);
    void reply.header('x-compute-request-id', req.id);
  });

  const base = (req: { protocol: string; host: string }) => `${req.protocol}://${req.host}`;
  app.get('/', async (req, reply) => reply.code(300).send(versionDocument(base(req))));
  app.get('/v3', async (req) => versionDocument(base(req)));
  app.get('/v3/', async (req) => versionDocument(base(req)));
  app.decorate('routeTable', routes);
  let openapi: Record<string, unknown> | undefined;
  let page: string | undefined;
  app.get('/openapi.json', async () => (openapi ??= openApiDocument(routes)));
  app.get('/openapi', async (_req, reply) =>
    reply.type('text/html; charset=utf-8').send((page ??= openApiPage((openapi ??= openApiDocument(routes))))),
  );
  await app.register(healthRoutes, { status, workerId: () => opts.worker?.()?.id, heartbeatTimeoutMs: opts.heartbeatTimeoutMs });
  metrics(app, { sql: opts.sql, enforcer, worker: opts.worker });
  await app.register(diagramRoutes);
  await app.register(uiRoutes, { status });

  const resources = async (scope: FastifyInstance) => {
    requestContext(scope, opts.auth, { serviceHost: opts.serviceHost ?? hostname(), backends });
    await scope.register(volumeRoutes, { volumes, attachments });
    await scope.register(metadataRoutes, { collection: 'volumes', service: volumes, idOf: volumeId });
    await scope.register(metadataRoutes, { collection: 'snapshots', service: snapshots, idOf: snapshotId });
    await scope.register(typeRoutes, { types: new VolumeTypeService(opts.sql) });
    await scope.register(qosRoutes, { qos: new QosService(opts.sql) });
    await scope.register(quotaRoutes, { quotas: new QuotaService(opts.sql) });
    await scope.register(adminRoutes, { hosts: new HostService(opts.sql, opts.heartbeatTimeoutMs ?? 5000), backends });
    await scope.register(volumeActionRoutes, { volumes, attachments });
    await scope.register(snapshotRoutes, { snapshots });
    await scope.register(groupRoutes, { volumes, groupTypes, groups, groupSnapshots });
    await scope.register(consistencyGroupRoutes, { volumes, groups, groupSnapshots });
    await scope.register(backupRoutes, { backups });
    await scope.register(transferRoutes, { transfers });
    await scope.register(messageRoutes, { messages: new MessageService(opts.sql) });
    await scope.register(attachmentRoutes, { attachments });
    await scope.register(eventRoutes, { tail });
    await scope.register(notImplementedRoutes);
  };
  await app.register(resources, { prefix: '/v3' });
  await app.register(resources, { prefix: '/v3/:project_id' });
  return app;
}
