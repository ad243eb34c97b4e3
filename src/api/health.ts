/**
 * Health endpoints for load balancers and orchestrators, outside the v3
 * API (no auth, no microversion):
 *
 * - `GET /healthz`: the process answers (liveness). Never touches the
 *   database: a database outage is not a reason to restart the node.
 * - `GET /readyz`: this node can serve (readiness): the database answers,
 *   the migrations this code expects are applied, and — on a node that
 *   runs a worker — its heartbeat is fresher than the worker timeout.
 *   200 with each check when ready; 503 in the fault shape, naming the
 *   checks that failed, when not.
 */
import type { FastifyPluginAsync } from 'fastify';
import { ApiError } from '../errors.ts';
import type { StatusService } from '../services/status.ts';

export interface HealthOptions {
  status: StatusService;
  /** the worker of this node, when it runs one */
  workerId?: () => string | undefined;
  /** a heartbeat older than this is not fresh */
  heartbeatTimeoutMs?: number;
}

/** A probe answers within this, database or not. */
const CHECK_MS = 2000;

function within<T>(ms: number, p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

interface Check {
  ok: boolean;
  detail: string;
}

export const healthRoutes: FastifyPluginAsync<HealthOptions> = async (app, opts) => {
  const shipped = opts.status.shippedMigrations;
  app.get('/healthz', async () => ({ status: 'ok' }));

  app.get('/readyz', async (_req, reply) => {
    const checks: Record<string, Check> = {};
    try {
      const applied = await within(CHECK_MS, opts.status.appliedMigrations());
      checks.database = { ok: true, detail: 'reachable' };
      checks.migrations =
        applied >= shipped
          ? { ok: true, detail: `${applied} applied` }
          : { ok: false, detail: `${applied} of ${shipped} applied: run volstate migrate` };
      const id = opts.workerId?.();
      if (id) {
        const age = await within(CHECK_MS, opts.status.heartbeatAge(id));
        const limit = (opts.heartbeatTimeoutMs ?? 5000) / 1000;
        checks.worker =
          age === undefined
            ? { ok: false, detail: `worker ${id} has no heartbeat row` }
            : { ok: age < limit, detail: `worker ${id} beat ${age.toFixed(1)} s ago (limit ${limit} s)` };
      }
    } catch (err) {
      checks.database = { ok: false, detail: `unreachable: ${err instanceof Error ? err.message : String(err)}` };
    }
    const failed = Object.entries(checks).filter(([, c]) => !c.ok);
    if (failed.length === 0) return { status: 'ready', checks };
    const e = new ApiError('NotReady', { reason: failed.map(([name, c]) => `${name}: ${c.detail}`).join('; ') }, { details: { checks } });
    return reply.code(e.status).header('Retry-After', '2').send(e.body());
  });
};
