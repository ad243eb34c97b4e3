/**
 * Quotas as Cinder serves them (src/services/quotas.ts; usage is changed by
 * the transitions themselves, src/enforcer.ts):
 *
 *   GET    /os-quota-sets/{project}[?usage=true]   limits, or {limit, in_use, reserved} each
 *   GET    /os-quota-sets/{project}/defaults
 *   PUT    /os-quota-sets/{project}                {"quota_set": {resource: limit}}   admin
 *   DELETE /os-quota-sets/{project}                back to the defaults               admin
 *   GET    /os-quota-class-sets/{class}, PUT       the defaults of a class (`default`) admin
 *   GET    /limits                                 absolute limits and usage; no rate limits
 *
 * A project sees its own quotas; an admin any project's. Limits are -1
 * (unlimited) or a whole number; a limit below what is in use is refused.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import { Type } from 'typebox';
import { ApiError } from '../errors.ts';
import type { QuotaService } from '../services/quotas.ts';
import { requireAdmin } from './context.ts';
import { invalid, unwrap } from './parse.ts';
import { ActionBody, ProjectParams, Query } from './schemas.ts';

export interface QuotaRoutesOptions {
  quotas: QuotaService;
}

const Target = Type.Object({ target: Type.String(), project_id: Type.Optional(Type.String()) });

function readable(req: FastifyRequest, project: string) {
  if (!req.caller.isAdmin && project !== req.caller.projectId)
    throw new ApiError('Forbidden', { action: 'volume_extension:quotas:show of another project' });
}

/**
 * `{stored resource: n}` with every n -1 or a whole number, and only resources
 * Cinder has: the fixed ones and `volumes_<type>`, `gigabytes_<type>`,
 * `snapshots_<type>` of existing types (stored by type id: renaming a type keeps its quotas).
 */
async function limitsOf(quotas: QuotaService, body: Record<string, unknown>): Promise<Record<string, number>> {
  const names = await quotas.names();
  const out: Record<string, number> = {};
  for (const [name, value] of Object.entries(body)) {
    if (name === 'tenant_id' || name === 'id') continue;
    const resource = names.get(name);
    if (resource === undefined) {
      const fixed = [...names.keys()].filter((n) => names.get(n) === n);
      throw invalid(
        name,
        value,
        `the quotas are ${fixed.join(', ')}, and volumes_<type>, gigabytes_<type>, snapshots_<type> for each volume type.`,
      );
    }
    const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < -1 || n > 2 ** 31 - 1)
      throw invalid(name, value, 'a quota is -1 (unlimited) or a whole number.');
    out[resource] = n;
  }
  if (Object.keys(out).length === 0) throw new ApiError('InvalidInput', { reason: 'give at least one quota to set.' });
  return out;
}

export const quotaRoutes: FastifyPluginAsync<QuotaRoutesOptions> = async (app, { quotas }) => {
  const r = app.withTypeProvider<TypeBoxTypeProvider>();

  r.get('/os-quota-sets/:target', { schema: { params: Target, querystring: Query } }, async (req) => {
    const project = req.params.target;
    readable(req, project);
    const usage = req.query.usage !== undefined && /^(1|t|true|on|y|yes)$/i.test(req.query.usage);
    const rows = await quotas.project(project);
    const values = Object.fromEntries(
      rows.map((q) => [q.name, usage ? { limit: q.limit, in_use: q.in_use, reserved: q.reserved } : q.limit]),
    );
    return { quota_set: { id: project, ...values } };
  });

  r.get('/os-quota-sets/:target/defaults', { schema: { params: Target } }, async (req) => ({
    quota_set: { id: req.params.target, ...(await quotas.classLimits('default')) },
  }));

  r.put('/os-quota-sets/:target', { schema: { params: Target, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:quotas:update');
    const project = req.params.target;
    return { quota_set: await quotas.setProject(project, await limitsOf(quotas, unwrap(req.body, 'quota_set'))) };
  });

  r.delete('/os-quota-sets/:target', { schema: { params: Target } }, async (req, reply) => {
    requireAdmin(req, 'volume_extension:quotas:delete');
    await quotas.clearProject(req.params.target);
    return reply.code(200).send();
  });

  r.get('/os-quota-class-sets/:target', { schema: { params: Target } }, async (req) => {
    requireAdmin(req, 'volume_extension:quota_classes');
    return { quota_class_set: { id: req.params.target, ...(await quotas.classLimits(req.params.target)) } };
  });

  r.put('/os-quota-class-sets/:target', { schema: { params: Target, body: ActionBody } }, async (req) => {
    requireAdmin(req, 'volume_extension:quota_classes');
    return { quota_class_set: await quotas.setClass(req.params.target, await limitsOf(quotas, unwrap(req.body, 'quota_class_set'))) };
  });

  r.get('/limits', { schema: { params: ProjectParams } }, async (req) => {
    const q = Object.fromEntries((await quotas.project(req.caller.projectId)).map((row) => [row.resource, row]));
    const n = (resource: string, what: 'limit' | 'in_use') => q[resource]?.[what] ?? (what === 'limit' ? -1 : 0);
    return {
      limits: {
        rate: [],
        absolute: {
          maxTotalVolumes: n('volumes', 'limit'),
          maxTotalSnapshots: n('snapshots', 'limit'),
          maxTotalVolumeGigabytes: n('gigabytes', 'limit'),
          maxTotalBackups: n('backups', 'limit'),
          maxTotalBackupGigabytes: n('backup_gigabytes', 'limit'),
          totalVolumesUsed: n('volumes', 'in_use'),
          totalSnapshotsUsed: n('snapshots', 'in_use'),
          totalGigabytesUsed: n('gigabytes', 'in_use'),
          totalBackupsUsed: 0,
          totalBackupGigabytesUsed: 0,
        },
      },
    };
  });
};
