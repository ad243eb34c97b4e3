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
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { ApiError } from '../errors.ts';
import type { Caller } from '../services/caller.ts';
import { negotiate, VERSION_HEADER, type Microversion } from './microversion.ts';


declare module 'fastify' {
  interface FastifyRequest {
    mv: Microversion;
    caller: Caller;
    urlProject: string | undefined;
  }
}

export interface TokenInfo {
  user: string;
  project: string;
  roles: readonly string[];
}

export interface AuthOptions {
  mode: 'noauth' | 'tokens';
  defaultProject: string;
  /** tokens mode: token → who */
  tokens?: ReadonlyMap<string, TokenInfo>;
}

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

/** Hooks of the v3 resource scope: microversion, then caller. */
export function requestContext(app: FastifyInstance, opts: AuthOptions): void {
  app.decorateRequest('mv', 0);
  app.decorateRequest('caller', null as unknown as Caller);
  app.decorateRequest('urlProject', undefined);
  app.addHook('onRequest', async (req, reply) => {
    req.mv = negotiate(req.headers[VERSION_HEADER]);
    reply.header('OpenStack-API-Version', `volume 3.${req.mv}`);
    reply.header('Vary', 'OpenStack-API-Version');
    const params = req.params as Record<string, string | undefined>;
    req.urlProject = params.project_id;
    req.caller = opts.mode === 'tokens' ? bearer(req, opts) : noauth(req, opts);
  });
}

/** What a view needs from the request. */
export interface ViewContext {
  mv: Microversion;
  /** scheme://host of the request */
  base: string;
  /** the project segment of the request URL, if it had one */
  urlProject: string | undefined;
  isAdmin: boolean;
}

export function viewContext(req: FastifyRequest): ViewContext {
  return { mv: req.mv, base: `${req.protocol}://${req.host}`, urlProject: req.urlProject, isAdmin: req.caller.isAdmin };
}
