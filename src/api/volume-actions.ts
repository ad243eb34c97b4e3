/**
 * POST /v3[/{project_id}]/volumes/{id}/action: one action key per body,
 * each an event through the machine. An unknown action is refused before
 * the volume is looked up, as in Cinder. Arguments may be `null`, `{}` or
 * an object (cinderclient sends null, openstacksdk `{}`).
 */
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { ApiError } from '../errors.ts';
import type { VolumeService } from '../services/volumes.ts';
import { invalid, parseIfMatch, parseSize } from './parse.ts';
import { ActionBody, IdParams } from './schemas.ts';
import { volumeId } from './volumes.ts';

/** Cinder's VolumeStatus.ALL: what os-reset_status validates against before the machine decides. */
export const CINDER_VOLUME_STATUSES = [
  'creating',
  'available',
  'deleting',
  'error',
  'error_deleting',
  'error_managing',
  'managing',
  'attaching',
  'in-use',
  'detaching',
  'maintenance',
  'restoring-backup',
  'error_restoring',
  'reserved',
  'awaiting-transfer',
  'backing-up',
  'error_backing-up',
  'error_extending',
  'downloading',
  'uploading',
  'retyping',
  'extending',
] as const;

interface ActionContext {
  req: FastifyRequest;
  reply: FastifyReply;
  id: string;
  args: Record<string, unknown>;
  volumes: VolumeService;
  ifMatch: number | undefined;
}

type Action = (ctx: ActionContext) => Promise<unknown>;

function args(value: unknown, action: string): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw invalid(action, value, `the arguments of ${action} must be an object or null.`);
  return value as Record<string, unknown>;
}

function adminOnly(ctx: ActionContext, action: string) {
  if (!ctx.req.caller.isAdmin) throw new ApiError('Forbidden', { action: `volume_extension:${action}` });
}

export const VOLUME_ACTIONS: Record<string, Action> = {
  'os-extend': async (ctx) => {
    if (ctx.args.new_size === undefined) throw invalid('new_size', 'None', 'new_size is required.');
    const newSize = parseSize(ctx.args.new_size, 'new_size');
    await ctx.volumes.send(ctx.req.caller, ctx.id, { type: 'EXTEND', new_size: newSize }, ctx.ifMatch);
    return ctx.reply.code(202).send();
  },

  'os-reset_status': async (ctx) => {
    adminOnly(ctx, 'admin_actions:reset_status');
    const { status, attach_status: attachStatus, migration_status: migrationStatus } = ctx.args;
    if (status === undefined && attachStatus === undefined && migrationStatus === undefined) {
      throw new ApiError('InvalidInput', { reason: 'os-reset_status needs at least one of status, attach_status, migration_status.' });
    }
    if (migrationStatus !== undefined && migrationStatus !== null && migrationStatus !== 'none') {
      throw new ApiError('InvalidInput', { reason: `volstate does not migrate volumes: migration_status can only be reset to none, not ${String(migrationStatus)}.` });
    }
    if (attachStatus !== undefined && attachStatus !== null && attachStatus !== 'detached') {
      throw new ApiError('InvalidInput', { reason: `attach_status ${String(attachStatus)} cannot be set: volumes are not attached in this version.` });
    }
    if (status !== undefined) {
      if (typeof status !== 'string' || !(CINDER_VOLUME_STATUSES as readonly string[]).includes(status)) {
        throw new ApiError('InvalidInput', {
          reason: `Volume status: ${String(status)} is invalid, valid statuses are: (${CINDER_VOLUME_STATUSES.map((s) => `'${s}'`).join(', ')}).`,
        });
      }
      // The machine decides which of these it accepts, and from where.
      await ctx.volumes.send(ctx.req.caller, ctx.id, { type: 'RESET_STATUS', status }, ctx.ifMatch);
    }
    return ctx.reply.code(202).send();
  },

  'os-force_delete': async (ctx) => {
    adminOnly(ctx, 'admin_actions:force_delete');
    await ctx.volumes.send(ctx.req.caller, ctx.id, { type: 'FORCE_DELETE' }, ctx.ifMatch);
    return ctx.reply.code(202).send();
  },
};

export const volumeActionRoutes: FastifyPluginAsync<{ volumes: VolumeService }> = async (app, { volumes }) => {
  app.withTypeProvider<TypeBoxTypeProvider>().post('/volumes/:id/action', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
    const keys = Object.keys(req.body);
    if (keys.length !== 1) {
      throw new ApiError('MalformedBody', { reason: `an action body has exactly one key, the action; got ${keys.length ? keys.join(', ') : 'none'}` });
    }
    const name = keys[0]!;
    const action = VOLUME_ACTIONS[name];
    if (!action) throw new ApiError('NoSuchAction', { action: name });
    const id = volumeId(req.params.id);
    return action({ req, reply, id, args: args(req.body[name], name), volumes, ifMatch: parseIfMatch(req.headers['if-match']) });
  });
};
