/**
 * POST /v3[/{project_id}]/volumes/{id}/action: one action key per body,
 * each an event through the machine. An unknown action is refused before
 * the volume is looked up, as in Cinder. Arguments may be `null`, `{}` or
 * an object (cinderclient sends null, openstacksdk `{}`).
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { capabilitiesOf, unmetSpec } from '../drivers/backends.ts';
import { ApiError } from '../errors.ts';
import { actionNotImplemented, VOLUME_ACTIONS_NOT_IMPLEMENTED } from './not-implemented.ts';
import { changeState } from './changes.ts';
import type { AttachmentService } from '../services/attachments.ts';
import type { VolumeService } from '../services/volumes.ts';
import { invalid, isUuid, parseBool, parseIfMatch, parseSize, show } from './parse.ts';
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
  id: string;
  args: Record<string, unknown>;
  volumes: VolumeService;
  attachments: AttachmentService;
  ifMatch: number | undefined;
}

/** An action: its success status (202 unless it says 200), and what it does (returning the body, when it has one). */
interface Action {
  status?: 200;
  /**
   * The action sets data or asks the driver, and moves no state: the
   * history records nothing of it, so src/api/changes.ts could not tell
   * whether it happened, and it is not run as a change.
   */
  stateless?: true;
  run(ctx: ActionContext): Promise<Record<string, unknown> | void>;
}

function args(value: unknown, action: string): Record<string, unknown> {
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value))
    throw invalid(action, value, `the arguments of ${action} must be an object or null.`);
  return value as Record<string, unknown>;
}

/** A connector argument: an object (os-brick's connector properties). */
function connectorOf(ctx: ActionContext, required: boolean): Record<string, unknown> | null {
  const c = ctx.args.connector;
  if (c === undefined || c === null) {
    if (required) throw invalid('connector', 'None', 'a connector is required.');
    return null;
  }
  if (typeof c !== 'object' || Array.isArray(c)) throw invalid('connector', c, 'the connector must be an object.');
  return c as Record<string, unknown>;
}

function optionalText(ctx: ActionContext, key: string): string | null {
  const v = ctx.args[key];
  if (v === undefined || v === null) return null;
  if (typeof v !== 'string') throw invalid(key, v, 'It must be a string.');
  return v;
}

function adminOnly(ctx: ActionContext, action: string) {
  if (!ctx.req.caller.isAdmin) throw new ApiError('Forbidden', { action: `volume_extension:${action}` });
}

export const VOLUME_ACTIONS: Record<string, Action> = {
  'os-extend': {
    run: async (ctx) => {
      if (ctx.args.new_size === undefined) throw invalid('new_size', 'None', 'new_size is required.');
      const newSize = parseSize(ctx.args.new_size, 'new_size');
      // Extending an attached volume is allowed from 3.42: the machine checks it.
      await ctx.volumes.extend(ctx.req.caller, ctx.id, { newSize, inUse: ctx.req.mv >= 42 }, ctx.ifMatch);
    },
  },

  revert: {
    run: async (ctx) => {
      if (ctx.req.mv < 40) throw new ApiError('NoSuchAction', { action: 'revert' });
      const snapshotId = ctx.args.snapshot_id;
      if (typeof snapshotId !== 'string') throw invalid('snapshot_id', snapshotId ?? 'None', 'snapshot_id is required.');
      if (!isUuid(snapshotId)) throw new ApiError('SnapshotNotFound', { id: snapshotId });
      await ctx.volumes.revert(ctx.req.caller, ctx.id, snapshotId.toLowerCase());
    },
  },

  'os-retype': {
    run: async (ctx) => {
      const newType = ctx.args.new_type;
      if (typeof newType !== 'string' || newType === '')
        throw invalid('new_type', newType ?? 'None', 'name the new volume type (id or name).');
      const policy = ctx.args.migration_policy ?? 'never';
      if (policy !== 'never' && policy !== 'on-demand')
        throw invalid('migration_policy', policy, "migration_policy is 'never' or 'on-demand'.");
      const volume = await ctx.volumes.get(ctx.req.caller, ctx.id);
      const type = await ctx.volumes.visibleType(ctx.req.caller, newType);
      if (!type) throw new ApiError('VolumeTypeNotFound', { id: newType });
      if (type.id === volume.volume_type_id)
        throw new ApiError('InvalidInput', { reason: `volume ${ctx.id} is already of type ${type.name}.` });
      // Encrypted and unencrypted data are not the same bytes: Cinder migrates for that, which volstate does not do.
      if (type.encrypted !== volume.encrypted) {
        throw new ApiError('InvalidInput', {
          reason: `type ${type.name} is ${type.encrypted ? '' : 'not '}encrypted and volume ${ctx.id} is ${volume.encrypted ? '' : 'not '}: that retype needs a migration, which volstate does not implement.`,
        });
      }
      // The volume stays where it is: a type its backend does not satisfy would need a migration, which volstate does not do.
      const here = ctx.req.site.backends.get(volume.backend);
      const unmet = unmetSpec(type.extra_specs, capabilitiesOf(here, await here.driver.capacity(), 0));
      if (unmet !== undefined) {
        throw new ApiError('InvalidInput', {
          reason: `type ${type.name} wants ${unmet}, which the volume's backend ${here.name} does not satisfy: that retype needs a migration, which volstate does not do.`,
        });
      }
      await ctx.volumes.send(ctx.req.caller, ctx.id, { type: 'RETYPE', type_id: type.id }, ctx.ifMatch);
    },
  },

  'os-reserve': {
    run: async (ctx) => {
      await ctx.attachments.legacyReserve(ctx.req.caller, ctx.id);
    },
  },

  'os-unreserve': {
    run: async (ctx) => {
      await ctx.attachments.legacyUnreserve(ctx.req.caller, ctx.id);
    },
  },

  'os-attach': {
    run: async (ctx) => {
      const mode = ctx.args.mode ?? 'rw';
      if (mode !== 'rw' && mode !== 'ro') throw invalid('mode', mode, "It must be 'rw' or 'ro'.");
      const instanceUuid = optionalText(ctx, 'instance_uuid');
      const hostName = optionalText(ctx, 'host_name');
      if (!instanceUuid && !hostName) throw new ApiError('InvalidInput', { reason: 'os-attach needs instance_uuid or host_name.' });
      await ctx.attachments.legacyAttach(ctx.req.caller, ctx.id, {
        instanceUuid,
        hostName,
        mountpoint: optionalText(ctx, 'mountpoint'),
        mode,
      });
    },
  },

  'os-begin_detaching': {
    run: async (ctx) => {
      await ctx.attachments.legacyBeginDetaching(ctx.req.caller, ctx.id);
    },
  },

  'os-roll_detaching': {
    run: async (ctx) => {
      await ctx.attachments.legacyRollDetaching(ctx.req.caller, ctx.id);
    },
  },

  'os-detach': {
    run: async (ctx) => {
      const attachmentId = optionalText(ctx, 'attachment_id');
      await ctx.attachments.legacyDetach(
        ctx.req.caller,
        ctx.id,
        attachmentId && isUuid(attachmentId) ? attachmentId.toLowerCase() : attachmentId,
      );
    },
  },

  'os-initialize_connection': {
    status: 200,
    stateless: true,
    run: async (ctx) => {
      const info = await ctx.attachments.initializeConnection(ctx.req.caller, ctx.id, connectorOf(ctx, true)!);
      return { connection_info: info };
    },
  },

  'os-terminate_connection': {
    run: async (ctx) => {
      await ctx.attachments.terminateConnection(ctx.req.caller, ctx.id, connectorOf(ctx, false));
    },
  },

  'os-set_bootable': {
    status: 200,
    stateless: true,
    run: async (ctx) => {
      if (ctx.args.bootable === undefined) throw invalid('bootable', 'None', 'bootable is required.');
      await ctx.volumes.setFlags(ctx.req.caller, ctx.id, { bootable: parseBool(ctx.args.bootable, 'bootable') });
    },
  },

  'os-update_readonly_flag': {
    stateless: true,
    run: async (ctx) => {
      if (ctx.args.readonly === undefined) throw invalid('readonly', 'None', 'readonly is required.');
      // Parsed as oslo does: the string 'False' is false (real Cinder once took it as true).
      await ctx.volumes.setFlags(ctx.req.caller, ctx.id, { readonly: parseBool(ctx.args.readonly, 'readonly') });
    },
  },

  'os-reset_status': {
    run: async (ctx) => {
      adminOnly(ctx, 'admin_actions:reset_status');
      const { status, attach_status: attachStatus, migration_status: migrationStatus } = ctx.args;
      if (status === undefined && attachStatus === undefined && migrationStatus === undefined) {
        throw new ApiError('InvalidInput', { reason: 'os-reset_status needs at least one of status, attach_status, migration_status.' });
      }
      if (migrationStatus !== undefined && migrationStatus !== null && migrationStatus !== 'none') {
        throw new ApiError('InvalidInput', {
          reason: `volstate does not migrate volumes: migration_status can only be reset to none, not ${show(migrationStatus)}.`,
        });
      }
      if (attachStatus !== undefined && attachStatus !== null && attachStatus !== 'detached' && attachStatus !== 'attached') {
        throw new ApiError('InvalidInput', { reason: `attach_status ${show(attachStatus)} is invalid: use attached or detached.` });
      }
      if (status !== undefined && (typeof status !== 'string' || !(CINDER_VOLUME_STATUSES as readonly string[]).includes(status))) {
        throw new ApiError('InvalidInput', {
          reason: `Volume status: ${show(status)} is invalid, valid statuses are: (${CINDER_VOLUME_STATUSES.map((s) => `'${s}'`).join(', ')}).`,
        });
      }
      // attach_status=detached detaches every attachment first (as Cinder);
      // attached only says what is already true of the attachments. The
      // machine decides which status it accepts, and from where.
      await ctx.volumes.resetStatus(
        ctx.req.caller,
        ctx.id,
        { status: status, detach: attachStatus === 'detached' },
        ctx.attachments,
        ctx.ifMatch,
      );
    },
  },

  'os-force_delete': {
    run: async (ctx) => {
      adminOnly(ctx, 'admin_actions:force_delete');
      await ctx.volumes.send(ctx.req.caller, ctx.id, { type: 'FORCE_DELETE' }, ctx.ifMatch);
    },
  },
};

export const volumeActionRoutes: FastifyPluginAsync<{ volumes: VolumeService; attachments: AttachmentService }> = async (
  app,
  { volumes, attachments },
) => {
  app
    .withTypeProvider<TypeBoxTypeProvider>()
    .post('/volumes/:id/action', { schema: { params: IdParams, body: ActionBody } }, async (req, reply) => {
      const keys = Object.keys(req.body);
      if (keys.length !== 1) {
        throw new ApiError('MalformedBody', {
          reason: `an action body has exactly one key, the action; got ${keys.length ? keys.join(', ') : 'none'}`,
        });
      }
      const name = keys[0]!;
      // Own keys only: `constructor` or `__proto__` name no action.
      const action = Object.hasOwn(VOLUME_ACTIONS, name) ? VOLUME_ACTIONS[name] : undefined;
      if (!action) throw actionNotImplemented(VOLUME_ACTIONS_NOT_IMPLEMENTED, name) ?? new ApiError('NoSuchAction', { action: name });
      const id = volumeId(req.params.id);
      const ctx = { req, id, args: args(req.body[name], name), volumes, attachments, ifMatch: parseIfMatch(req.headers['if-match']) };
      // Only stateless actions answer a body (os-initialize_connection), so a
      // change that committed before its connection was lost never needs one.
      const body = action.stateless
        ? await action.run(ctx)
        : await changeState(
            req,
            reply,
            () => action.run(ctx),
            async () => undefined,
          );
      return reply.code(action.status ?? 202).send(body);
    });
};
