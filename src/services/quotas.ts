/**
 * Quota limits, independent of HTTP (db/quotas.ts holds the statements;
 * usage is changed by the transitions themselves, src/enforcer.ts). A
 * project's new limits are all set or none: one transaction.
 */
import type { Sql } from '../../db/connect.ts';
import { classSet, clearLimits, quotaSet, setLimits, storedNames, type QuotaRow } from '../../db/quotas.ts';
import { transaction } from '../../db/tx.ts';
import { ApiError } from '../errors.ts';

export type { QuotaRow };

export class QuotaService {
  constructor(private readonly sql: Sql) {}

  /** Cinder's resource names → stored ones (`volumes_<type name>` → `volumes@<type id>`). */
  names(): Promise<Map<string, string>> {
    return storedNames(this.sql);
  }

  /** A project's limits and usage, every resource Cinder reports. */
  project(projectId: string): Promise<QuotaRow[]> {
    return quotaSet(this.sql, projectId);
  }

  /** A class's limits by Cinder's names (`default`: the defaults). */
  classLimits(className: string): Promise<Record<string, number>> {
    return classSet(this.sql, className);
  }

  /**
   * Set a project's limits (stored names → -1 or a whole number), all or
   * none; a limit below what the project uses now is refused, as Cinder
   * refuses it. Answers every limit by Cinder's name.
   */
  async setProject(projectId: string, limits: Record<string, number>): Promise<Record<string, number>> {
    const current = await quotaSet(this.sql, projectId);
    for (const [resource, limit] of Object.entries(limits)) {
      const used = current.find((q) => q.resource === resource);
      if (limit >= 0 && used && used.in_use + used.reserved > limit) {
        throw new ApiError('InvalidInput', {
          reason: `Quota ${used.name} limit must be equal or greater than existing resources. Current usage is ${used.in_use + used.reserved} and the requested limit is ${limit}.`,
        });
      }
    }
    await transaction(this.sql, { rows: [] }, (tx) => setLimits(tx, 'project', projectId, limits));
    return Object.fromEntries((await quotaSet(this.sql, projectId)).map((q) => [q.name, q.limit]));
  }

  /** Back to the defaults: the project's own limits removed. */
  clearProject(projectId: string): Promise<void> {
    return clearLimits(this.sql, projectId);
  }

  /** Set a class's limits, all or none; answers the class's limits by Cinder's name. */
  async setClass(className: string, limits: Record<string, number>): Promise<Record<string, number>> {
    await transaction(this.sql, { rows: [] }, (tx) => setLimits(tx, 'class', className, limits));
    return classSet(this.sql, className);
  }
}
