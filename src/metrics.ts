/**
 * Prometheus metrics at `GET /metrics` (prom-client, the ecosystem's
 * client; one registry per app, so several apps in one process — tests —
 * do not share counters).
 *
 * - volstate_transitions_total{machine,event,from}: transitions this node applied
 * - volstate_refusals_total{machine,event,state,reason}: refused attempts (busy, invalid, gone, stale, …)
 * - volstate_cas_duration_seconds{machine,event}: the CAS statement, as the enforcer saw it
 * - volstate_resources{machine,state}: live resources per state, read from the database at scrape time
 * - volstate_waiters: requests waiting (`Prefer: wait`), all nodes
 * - volstate_worker_heartbeat_age_seconds, volstate_worker_steps_in_flight,
 *   volstate_worker_steps_completed_total, volstate_worker_recoveries_total: this node's worker
 * - volstate_notify_lag_transitions, volstate_notify_leading, volstate_notify_published_total,
 *   volstate_notify_errors_total: the notification relay (src/notify/relay.ts)
 * - volstate_http_requests_total{route,method,status}
 * - the process's own (CPU, memory, event loop lag), prom-client's defaults
 *
 * Counters are this node's; gauges read from the database are the whole
 * deployment's (every node's scrape shows them alike).
 */
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Sql } from '../db/connect.ts';
import { heartbeatAge } from '../db/health.ts';
import { liveStateCounts } from '../db/overview.ts';
import { waiterCount } from '../db/waiters.ts';
import type { Enforcer, Observation } from './enforcer.ts';
import type { Worker } from './worker/worker.ts';
import { relayLag } from '../db/notify.ts';

export interface MetricsOptions {
  sql: Sql;
  enforcer: Enforcer;
  worker?: (() => Worker | undefined) | undefined;
}

/** Registered on the root app (not as an encapsulated plugin): its HTTP hook must see every route. */
export function metrics(app: FastifyInstance, opts: MetricsOptions): void {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'volstate_' });
  const transitions = new Counter({
    name: 'volstate_transitions_total',
    help: 'Transitions this node applied',
    labelNames: ['machine', 'event', 'from'],
    registers: [registry],
  });
  const refusals = new Counter({
    name: 'volstate_refusals_total',
    help: 'Transition attempts refused, by reason',
    labelNames: ['machine', 'event', 'state', 'reason'],
    registers: [registry],
  });
  const cas = new Histogram({
    name: 'volstate_cas_duration_seconds',
    help: 'Time of a transition attempt (the CAS statement and its refusal read)',
    labelNames: ['machine', 'event'],
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
    registers: [registry],
  });
  const observe = (o: Observation) => {
    cas.observe({ machine: o.type, event: o.event }, o.seconds);
    if (o.outcome === 'applied') transitions.inc({ machine: o.type, event: o.event, from: o.state ?? '' });
    else refusals.inc({ machine: o.type, event: o.event, state: o.state ?? '', reason: o.outcome });
  };
  opts.enforcer.observers.push(observe);
  app.addHook('onClose', async () => {
    const i = opts.enforcer.observers.indexOf(observe);
    if (i >= 0) opts.enforcer.observers.splice(i, 1);
  });

  const { sql } = opts;
  new Gauge({
    name: 'volstate_resources',
    help: 'Live resources per machine state (the whole deployment)',
    labelNames: ['machine', 'state'],
    registers: [registry],
    async collect() {
      this.reset();
      for (const [machine, states] of Object.entries(await liveStateCounts(sql))) {
        for (const [state, n] of Object.entries(states)) this.set({ machine, state }, n);
      }
    },
  });
  new Gauge({
    name: 'volstate_waiters',
    help: 'Requests waiting for a resource (Prefer: wait), all nodes',
    registers: [registry],
    async collect() {
      this.set(await waiterCount(sql));
    },
  });
  const worker = () => opts.worker?.();
  new Gauge({
    name: 'volstate_worker_heartbeat_age_seconds',
    help: "Seconds since this node's worker last beat (database clock)",
    registers: [registry],
    async collect() {
      const w = worker();
      const age = w ? await heartbeatAge(sql, w.id) : undefined;
      if (age !== undefined) this.set(age);
    },
  });
  new Gauge({
    name: 'volstate_worker_steps_in_flight',
    help: "Steps this node's worker is running",
    registers: [registry],
    collect() {
      this.set(worker()?.stepsInFlight ?? 0);
    },
  });
  new Counter({
    name: 'volstate_worker_steps_completed_total',
    help: "Steps this node's worker completed",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(worker()?.completed ?? 0);
    },
  });
  new Counter({
    name: 'volstate_worker_recoveries_total',
    help: "Rows of dead workers this node's worker took back",
    registers: [registry],
    collect() {
      this.reset();
      this.inc(worker()?.recovered ?? 0);
    },
  });
  // Notifications (src/notify/relay.ts), on a node whose worker relays them (VOLSTATE_NOTIFY_URL).
  const relay = () => worker()?.relay;
  new Gauge({
    name: 'volstate_notify_lag_transitions',
    help: 'Transitions of the history not yet confirmed by the notification broker (the whole deployment)',
    registers: [registry],
    async collect() {
      const lag = relay() ? await relayLag(sql) : undefined;
      if (lag) this.set(lag.lag);
    },
  });
  new Gauge({
    name: 'volstate_notify_leading',
    help: "1 while this node's worker holds the notification relay's lease",
    registers: [registry],
    collect() {
      this.set(relay()?.leading ? 1 : 0);
    },
  });
  for (const [key, help] of [
    ['published', 'Notifications this node published and the broker confirmed'],
    ['errors', "Rounds of this node's relay that failed (broker unreachable, a channel closed, the database gone)"],
  ] as const) {
    new Counter({
      name: `volstate_notify_${key}_total`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(relay()?.[key] ?? 0);
      },
    });
  }
  // Group commit (src/group-commit.ts): rows ÷ statements is how many transitions a round trip carried.
  for (const [key, help] of [
    ['statements', 'Grouped transition statements this node sent (one event, several rows)'],
    ['rows', 'Transitions those grouped statements carried'],
    ['fallbacks', 'Grouped statements PostgreSQL refused whole, whose rows then went one by one'],
  ] as const) {
    new Counter({
      name: `volstate_group_commit_${key}_total`,
      help,
      registers: [registry],
      collect() {
        this.reset();
        this.inc(opts.enforcer.batches[key]);
      },
    });
  }
  // Work kept (src/enforcer.ts keepWork): rows this node made pending work, and who was woken for them.
  new Counter({
    name: 'volstate_pending_work_total',
    help: "Rows this node's transitions made pending work, by who was woken: its own worker in the process (kept), or every node by a NOTIFY (announced)",
    labelNames: ['woken'],
    registers: [registry],
    collect() {
      this.reset();
      this.inc({ woken: 'kept' }, opts.enforcer.pendingWork.kept);
      this.inc({ woken: 'announced' }, opts.enforcer.pendingWork.announced);
    },
  });
  const http = new Counter({
    name: 'volstate_http_requests_total',
    help: 'HTTP requests answered',
    labelNames: ['route', 'method', 'status'],
    registers: [registry],
  });
  app.addHook('onResponse', async (req, reply) => {
    http.inc({ route: req.routeOptions.url ?? 'unmatched', method: req.method, status: String(reply.statusCode) });
  });

  app.get('/metrics', async (_req, reply) => reply.type(registry.contentType).send(await registry.metrics()));
}
