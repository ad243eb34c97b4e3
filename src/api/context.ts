/**
 * Per-request context for the v3 resource routes: the negotiated
 * microversion and the caller (who, which project, admin or not).
 *
 * Auth mode `noauth` (Cinder's): the token is `user:project`
 * (cinderclient's noauth plugin), or the `x-user-id` / `x-project-id`
 * headers; `notused` or nothing means the default project. A project in
 * the URL names the project. Every caller is admin, as in Cinder's noauth.
 *
 * Auth mode `tokens`: bearer tokens from a file, each naming a user, a
 * project and roles; an unknown or missing token is 401. A project in the
 * URL must be the token's own (an admin may name any): another project
 * answers 404, as its resources do.
 *
 * Auth mode `keystone`: tokens validated by Keystone (src/auth/keystone.ts),
 * roles as Cinder's default policies: `reader` reads, `member` changes its
 * project's resources, `admin` does admin actions (and reads and acts on
 * any project's resources by id, as in Cinder). A project in the URL that is
 * not the token's is 400 "Malformed request url", as Cinder answers it.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { KeystoneAuth } from '../auth/keystone.ts';
import { ApiError } from '../errors.ts';
import type { Caller } from '../services/caller.ts';
import type { Backends } from '../drivers/backends.ts';
import { negotiate, VERSION_HEADER, type Microversion } from './microversion.ts';

declare module 'fastify' {
  interface FastifyRequest {
    mv: Microversion;
    caller: Caller;
    urlProject: string | undefined;
    site: Site;
  }
}

/** Facts of this node that views show: the host volumes are served from, the backend. */
export interface Site {
  serviceHost: string;
  /** the backends this node serves (src/drivers/backends.ts) */
  backends: Backends;
}

export interface TokenInfo {
  user: string;
  project: string;
  roles: readonly string[];
}

export interface AuthOptions {
  mode: 'noauth' | 'tokens' | 'keystone';
  defaultProject: string;
  /** tokens mode: token → who */
  tokens?: ReadonlyMap<string, TokenInfo>;
  /** keystone mode: the validator */
  keystone?: KeystoneAuth;
}

/** Methods that only read: a `reader` may send them. */
const READS = new Set(['GET', 'HEAD', 'OPTIONS']);

const header = (req: FastifyRequest, name: string): string | undefined => {
  const v = req.headers[name];
  return (Array.isArray(v) ? v[0] : v)?.trim() || undefined;
};

function noauth(req: FastifyRequest, opts: AuthOptions): Caller {
  const token = header(req, 'x-auth-token');
  let user: string | undefined;
  let project: string | undefined;
  if (token && token !== 'notused' && token.includes(':')) [user, project] = token.split(':', 2);
  user ||= header(req, 'x-user-id') || 'admin';
  project = req.urlProject ?? (project || header(req, 'x-project-id') || opts.defaultProject);
  return { userId: user, projectId: project, isAdmin: true, requestId: req.id };
}

function bearer(req: FastifyRequest, opts: AuthOptions): Caller {
  const token = header(req, 'x-auth-token');
  const info = token ? opts.tokens?.get(token) : undefined;
  if (!info) throw new ApiError('Unauthorized', { reason: token ? 'the X-Auth-Token is not valid' : 'send an X-Auth-Token' });
  const isAdmin = info.roles.includes('admin');
  if (req.urlProject !== undefined && req.urlProject !== info.project && !isAdmin) throw new ApiError('NotFound');
  return { userId: info.user, projectId: req.urlProject ?? info.project, isAdmin, requestId: req.id };
}

async function keystone(req: FastifyRequest, auth: KeystoneAuth): Promise<Caller> {
  const token = header(req, 'x-auth-token');
  if (!token) throw new ApiError('Unauthorized', { reason: 'send an X-Auth-Token from Keystone' });
  const id = await auth.identify(token);
  if (!id)
    throw new ApiError('Unauthorized', {
      reason: 'the X-Auth-Token is not valid (unknown, expired or revoked); get a new one from Keystone',
    });
  if (!id.projectId) throw new ApiError('Forbidden', { action: 'a request without a project-scoped token' });
  if (req.urlProject !== undefined && req.urlProject !== id.projectId) throw new ApiError('MalformedUrl');
  const isAdmin = id.roles.includes('admin');
  const member = isAdmin || id.roles.includes('member');
  if (!member && !id.roles.includes('reader'))
    throw new ApiError('Forbidden', { action: 'a token with none of the roles reader, member, admin' });
  if (!member && !READS.has(req.method))
    throw new ApiError('Forbidden', { action: `${req.method} by a reader (it needs the member role)` });
  return { userId: id.userId, projectId: id.projectId, isAdmin, requestId: req.id };
}

/** Hooks of the v3 resource scope: microversion, then caller. */
export function requestContext(app: FastifyInstance, opts: AuthOptions, site: Site): void {
  app.decorateRequest('mv', 0);
  // Fastify wants a placeholder of the decorated type (it shapes the request object once); the
  // onRequest hook below sets caller and site before any handler can read them.
  app.decorateRequest('caller', null as unknown as Caller);
  app.decorateRequest('urlProject', undefined);
  app.decorateRequest('site', null as unknown as Site);
  app.addHook('onRequest', async (req, reply) => {
    req.site = site;
    req.mv = negotiate(req.headers[VERSION_HEADER]);
    reply.header('OpenStack-API-Version', `volume 3.${req.mv}`);
    reply.header('Vary', 'OpenStack-API-Version');
    const params = req.params as Record<string, string | undefined>;
    req.urlProject = params.project_id;
    req.caller =
      opts.mode === 'keystone' ? await keystone(req, opts.keystone!) : opts.mode === 'tokens' ? bearer(req, opts) : noauth(req, opts);
  });
}

/** Admin only, as Cinder's default policies have it: 403 naming the policy otherwise. */
export function requireAdmin(req: FastifyRequest, action: string): void {
  if (!req.caller.isAdmin) throw new ApiError('Forbidden', { action });
}

/** What a view needs from the request. */
export interface ViewContext {
  mv: Microversion;
  /** scheme://host of the request */
  base: string;
  /** the project segment of the request URL, if it had one */
  urlProject: string | undefined;
  isAdmin: boolean;
  /** `host@backend#pool` of a volume on `backend` (null: the default backend) */
  volumeHost(backend: string | null): string;
}

export function viewContext(req: FastifyRequest): ViewContext {
  const { serviceHost, backends } = req.site;
  const volumeHost = (backend: string | null) => {
    const name = backend ?? backends.default.name;
    return `${serviceHost}@${name}#${name}`;
  };
  return { mv: req.mv, base: `${req.protocol}://${req.host}`, urlProject: req.urlProject, isAdmin: req.caller.isAdmin, volumeHost };
}
