/**
 * `volstate harness`: a concurrency scenario against nodes it starts
 * itself (`--nodes N`: real `volstate serve` processes on one database,
 * the file driver on one shared directory) or against any endpoint
 * (`--endpoint URL`), with faults injected while it runs, and at the end
 * the independent history checker (src/check/history.ts) over what the run
 * left, including that every change a client was told succeeded is in the
 * history and no refused one is.
 *
 * Every run prints its seed first; the same seed draws the same operations
 * (their interleaving across clients is the machine's).
 */
import { startRabbit, type Rabbit } from '../../db/servers/rabbitmq.ts';
import { relayLag } from '../../db/notify.ts';
import { checkNotifications } from '../check/notifications.ts';
import { NotificationConsumer, type ReceivedNotification } from './consumer.ts';
import { transportUrls } from '../notify/config.ts';
import { mkdirSync, mkdtempSync, chmodSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { APP_DATABASE, connect, ensureDatabase, sqlClient } from '../../db/connect.ts';
import { startEmbedded, type EmbeddedServer } from '../../db/servers/embedded.ts';
import { migrate } from '../../db/migrate.ts';
import { startPatroni, type PatroniCluster } from '../../db/servers/patroni.ts';
import { RESOURCE_TYPES } from '../../machines/index.ts';
import { isConnectionError } from '../../db/sqlstate.ts';
import { checkHistory, formatReport } from '../check/history.ts';
import { factsOf } from '../check/edges.ts';
import { Client, Pool, rng, type Outcome } from './client.ts';
import { startNode, type VolstateNode } from './nodes.ts';
import { htmlReport, textReport, type FaultEvent, type RunSummary } from './report.ts';
import { loadScenario } from './scenario.ts';
import { parseDuration } from '../duration.ts';

export interface Faults {
  /** SIGKILL a random node and start another in its place, every so many ms */
  killEveryMs?: number | undefined;
  /** pg_terminate_backend some of the nodes' connections, every so many ms */
  pgTerminateEveryMs?: number | undefined;
  /** stop and start the PostgreSQL the harness started (fast shutdown), every so many ms */
  pgRestartEveryMs?: number | undefined;
  /** lose the primary's machine (`--db patroni`): SIGKILL its Patroni and PostgreSQL, let the standby be promoted, bring the old one back as a standby; every so many ms */
  pgFailoverEveryMs?: number | undefined;
  /** before each failover, stop the primary's WAL senders for so many ms and lose the primary halfway (what an asynchronous standby loses) */
  stallStandbyMs?: number | undefined;
  /** share of backend operations that fail */
  driverFail?: number | undefined;
  /** time added to each backend operation */
  driverLatencyMs?: number | undefined;
  /** stop the RabbitMQ the harness started (`--notify`) and start it again, every so many ms */
  rabbitRestartEveryMs?: number | undefined;
}

export interface HarnessOptions {
  scenario: string;
  /** start this many nodes (0: use `endpoint`) */
  nodes: number;
  endpoint?: string | undefined;
  clients: number;
  ops?: number | undefined;
  durationMs?: number | undefined;
  /**
   * go on past --ops until this many faults were injected: a test that asserts a run rides out
   * its faults waits on them, not on how many operations a machine makes before the first timer
   * fires (300 operations took under 2 s on a fast machine, and no restart came)
   */
  minFaults?: number | undefined;
  /** the same, per kind of fault (`{ 'rabbit-restart': 1 }`) */
  minFaultsOf?: Record<string, number> | undefined;
  seed: number;
  faults: Faults;
  /** the database: the nodes' (default: an embedded one the harness starts), or the endpoint's, for the check */
  databaseUrl?: string | undefined;
  /**
   * which database the harness starts when no URL is given: one embedded
   * server, or Patroni with etcd and two PostgreSQL servers (db/servers/patroni.ts)
   * with a synchronous standby, or (`patroni-async`) an asynchronous one,
   * which a failover can promote with the last acknowledged changes missing
   */
  db?: 'embedded' | 'patroni' | 'patroni-async' | undefined;
  /** Patroni's leader-key TTL in seconds (`--db patroni`; default 10) */
  patroniTtl?: number | undefined;
  token: string;
  /** write the HTML report here */
  reportFile?: string | undefined;
  /** more environment for the nodes (e.g. VOLSTATE_BREAK_GUARDS for the checker's own test) */
  nodeEnv?: Record<string, string> | undefined;
  /** write each node's log (stderr; its level is NODE_LOG_LEVEL, default error) to DIR/node<i>.log */
  nodeLogs?: string | undefined;
  /** how long the run may take to come to rest after the clients stop */
  settleMs?: number | undefined;
  /**
   * start a RabbitMQ, have the nodes send Cinder's notifications to it (durable), consume them,
   * and check that every transition's arrived, in order per resource within each priority (implied by rabbit-restart)
   */
  notify?: boolean | undefined;
  /** worker timeout of the nodes (recovery after a kill) */
  timeoutMs?: number | undefined;
  progress?: ((line: string) => void) | undefined;
}

/** `kill:every=5s,pg-terminate:every=7s,pg-failover:every=30s,driver-fail:0.05,driver-latency:50ms` */
export function parseFaults(spec: string | undefined): Faults {
  const faults: Faults = {};
  for (const part of (spec ?? '')
    .split(',')
    .map((p) => p.trim())
    .filter(Boolean)) {
    const [kind, arg = ''] = part.split(':', 2) as [string, string?];
    const every = () => {
      if (!arg.startsWith('every=')) throw new Error(`--faults ${part}: write ${kind}:every=<duration>`);
      return parseDuration(arg.slice(6), `--faults ${part}`);
    };
    if (kind === 'kill') faults.killEveryMs = every();
    else if (kind === 'pg-terminate') faults.pgTerminateEveryMs = every();
    else if (kind === 'pg-restart') faults.pgRestartEveryMs = every();
    else if (kind === 'pg-failover') faults.pgFailoverEveryMs = every();
    else if (kind === 'stall-standby') faults.stallStandbyMs = parseDuration(arg, `--faults ${part}`);
    else if (kind === 'driver-fail') {
      const p = Number(arg);
      if (!(p >= 0 && p <= 1)) throw new Error(`--faults ${part}: the failure rate is a number from 0 to 1`);
      faults.driverFail = p;
    } else if (kind === 'driver-latency') faults.driverLatencyMs = parseDuration(arg, `--faults ${part}`);
    else if (kind === 'rabbit-restart') faults.rabbitRestartEveryMs = every();
    else
      throw new Error(
        `--faults ${part}: unknown fault ${kind}; faults are kill, pg-terminate, pg-restart, pg-failover, stall-standby, driver-fail, driver-latency, rabbit-restart`,
      );
  }
  return faults;
}

interface Cluster {
  nodes: VolstateNode[];
  databaseUrl: string;
  replace(node: VolstateNode): Promise<void>;
  /** SIGKILL a node (the kill fault); its successor is started by the fault */
  kill(node: VolstateNode): void;
  /** stop the embedded PostgreSQL and start it again on its port (undefined: the harness did not start it) */
  restartDatabase: (() => Promise<void>) | undefined;
  /** the replicated database the harness started (`--db patroni`) */
  patroni: PatroniCluster | undefined;
  /** the RabbitMQ the nodes send notifications to (`--notify`) */
  rabbit: Rabbit | undefined;
  stop(): Promise<void>;
}

const mkdirAt = (path: string) => {
  mkdirSync(path, { recursive: true });
  return path;
};

async function startCluster(opts: HarnessOptions, say: (s: string) => void): Promise<Cluster> {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-harness-'));
  chmodSync(dir, 0o755); // as root, the embedded PostgreSQL runs as user postgres
  let embedded: EmbeddedServer | undefined;
  let patroni: PatroniCluster | undefined;
  let databaseUrl = opts.databaseUrl;
  if (opts.faults.pgRestartEveryMs && (databaseUrl || (opts.db && opts.db !== 'embedded')))
    throw new Error('--faults pg-restart restarts the embedded PostgreSQL the harness starts itself: leave --database-url and --db out');
  const replicated = opts.db === 'patroni' || opts.db === 'patroni-async';
  if (opts.faults.pgFailoverEveryMs && !replicated)
    throw new Error('--faults pg-failover fails over the replicated database the harness starts: add --db patroni');
  if (opts.faults.stallStandbyMs && !opts.faults.pgFailoverEveryMs)
    throw new Error('--faults stall-standby stalls the standby before each pg-failover: add pg-failover:every=<duration>');
  if (replicated && databaseUrl) throw new Error(`--db ${opts.db} starts its own database: leave --database-url out`);
  if (replicated) {
    const synchronous = opts.db === 'patroni';
    say(`starting etcd, Patroni and two PostgreSQL servers (${synchronous ? 'synchronous' : 'asynchronous'} standby) under ${dir}`);
    patroni = await startPatroni({
      dir: mkdirAt(join(dir, 'patroni')),
      ttl: opts.patroniTtl,
      synchronous,
      // An asynchronous standby however far behind is promoted: what it lacks is what the check must find.
      ...(synchronous ? {} : { maximumLagOnFailover: 1024 ** 3 }),
      say,
    });
    await ensureDatabase(patroni.adminUrl, APP_DATABASE);
    databaseUrl = patroni.url;
  } else if (!databaseUrl) {
    say(`starting an embedded PostgreSQL under ${dir}`);
    embedded = await startEmbedded({ dir: join(dir, 'db'), fast: true });
    await ensureDatabase(embedded.adminUrl, APP_DATABASE);
    databaseUrl = embedded.urlFor(APP_DATABASE);
  }
  let rabbit: Rabbit | undefined;
  try {
    if (opts.notify || opts.faults.rabbitRestartEveryMs) {
      say(`starting RabbitMQ under ${dir}/rabbit`);
      rabbit = await startRabbit({ dir: join(dir, 'rabbit') });
    }
    return await startNodes(opts, say, dir, databaseUrl, embedded, patroni, rabbit);
  } catch (err) {
    // Nothing of a database or broker the harness started may outlive a failed start.
    await rabbit?.stop();
    await patroni?.stop();
    await embedded?.stop();
    throw err;
  }
}

/** How long a node gets to exit after SIGTERM when the run is over, before SIGKILL (its drain is 10 s by default). */
const NODE_STOP_MS = 30_000;

async function startNodes(
  opts: HarnessOptions,
  say: (s: string) => void,
  dir: string,
  databaseUrl: string,
  startedEmbedded: EmbeddedServer | undefined,
  patroni: PatroniCluster | undefined,
  rabbit: Rabbit | undefined,
): Promise<Cluster> {
  let embedded = startedEmbedded;
  await migrate(databaseUrl);
  const timeoutMs = opts.timeoutMs ?? 2000;
  const failures = opts.faults.driverFail
    ? ['create', 'delete', 'extend', 'snapshot', 'delete_snapshot', 'clone', 'revert']
        .map((op) => `${op}:${opts.faults.driverFail}`)
        .join(',')
    : '';
  const nodeOpts = (i: number) => ({
    databaseUrl: databaseUrl,
    dataDir: join(dir, `node${i}`),
    storage: join(dir, 'storage'),
    latencyMs: opts.faults.driverLatencyMs ?? 0,
    timeoutMs,
    // One backup store for every node, as their storage is one: a backup one node began, another resumes or restores.
    env: {
      VOLSTATE_BACKUP_DIR: join(dir, 'backups'),
      ...(failures ? { VOLSTATE_DRIVER_FAILURES: failures } : {}),
      // Durable, so what the broker confirmed outlives its restarts (the consumer declares the same).
      ...(rabbit ? { VOLSTATE_NOTIFY_URL: rabbit.url, VOLSTATE_NOTIFY_DURABLE: 'true' } : {}),
      ...opts.nodeEnv,
    },
    logFile: opts.nodeLogs ? join(mkdirAt(opts.nodeLogs), `node${i}.log`) : undefined,
  });
  let next = 0;
  let stopped = false;
  const nodes: VolstateNode[] = [];
  /** successors being started (replace) */
  const pending = new Set<Promise<VolstateNode>>();
  /** Nodes the harness itself killed (the kill fault starts their successors). */
  const killed = new Set<VolstateNode>();
  // A node that exits on its own (a crash, or a signal from outside) is taken out of the
  // rotation and replaced, as a supervisor would: clients never keep calling a dead endpoint.
  const start = async (): Promise<VolstateNode> => {
    const node = await startNode(nodeOpts(next++));
    void node.exited.then(() => {
      if (stopped || killed.has(node)) return;
      say(`node ${node.url} exited on its own: starting another`);
      void cluster.replace(node).catch((err: unknown) => say(`could not start a node in place of ${node.url}: ${String(err)}`));
    });
    return node;
  };
  say(`starting ${opts.nodes} nodes`);
  nodes.push(...(await Promise.all(Array.from({ length: opts.nodes }, start))));
  const cluster: Cluster = {
    nodes,
    kill(node) {
      killed.add(node);
      node.proc.kill('SIGKILL');
    },
    databaseUrl,
    patroni,
    rabbit,
    restartDatabase: embedded
      ? async () => {
          const port = embedded!.port;
          await embedded!.stop();
          embedded = await startEmbedded({ dir: join(dir, 'db'), port, fast: true });
        }
      : undefined,
    async replace(node) {
      const i = nodes.indexOf(node);
      if (i < 0 || stopped) return; // already replaced, or the run is over
      nodes.splice(i, 1);
      // As a supervisor does: a start that fails (its database failing over, say) is tried
      // again until one serves. Giving up once left a Patroni soak with no node at all.
      for (let attempt = 1; !stopped; attempt++) {
        const starting = start();
        pending.add(starting);
        try {
          nodes.push(await starting);
          return;
        } catch (err) {
          if (stopped) throw err;
          say(
            `could not start a node in place of ${node.url} (attempt ${attempt}): ${String(err).split('\n').slice(0, 4).join(' | ')}; trying again`,
          );
          await new Promise((resolve) => setTimeout(resolve, Math.min(250 * attempt, 2000)));
        } finally {
          pending.delete(starting);
        }
      }
    },
    async stop() {
      stopped = true;
      // A successor still starting would otherwise outlive the run (and write into its storage).
      await Promise.allSettled([...pending]);
      say(`stopping ${nodes.length} nodes and the database`);
      await Promise.all(
        nodes.map(async (n) => {
          n.proc.kill('SIGTERM');
          // A node finishes its in-flight steps on SIGTERM (drainMs); one that has not exited well past that is killed, and says so.
          const timer = setTimeout(() => {
            say(`node ${n.url} did not exit ${NODE_STOP_MS} ms after SIGTERM: killing it`);
            n.proc.kill('SIGKILL');
          }, NODE_STOP_MS);
          await n.exited;
          clearTimeout(timer);
        }),
      );
      await embedded?.stop();
      await patroni?.stop();
      await rabbit?.stop();
      rmSync(dir, { recursive: true, force: true, maxRetries: 5 });
    },
  };
  return cluster;
}

/** Rows still in a worker step or owned: the run has not come to rest. */
async function unsettled(sql: postgres.Sql): Promise<number> {
  const steps = RESOURCE_TYPES.flatMap((t) => [...factsOf(t).steps]);
  const [row] = await sql<{ n: number }[]>`SELECT count(*)::int AS n FROM resource_states WHERE owner IS NOT NULL OR state = ANY(${steps})`;
  return row!.n;
}

export async function runHarness(opts: HarnessOptions): Promise<RunSummary> {
  const say = opts.progress ?? (() => {});
  const scenario = loadScenario(opts.scenario);
  say(`seed ${opts.seed} (replay with --seed ${opts.seed}); scenario ${scenario.name}: ${scenario.doc}`);
  if (!opts.nodes && !opts.endpoint) throw new Error('give --nodes N, or --endpoint URL');
  const cluster = opts.nodes ? await startCluster(opts, say) : undefined;
  const databaseUrl = cluster?.databaseUrl ?? opts.databaseUrl;
  const endpoints = () => (cluster ? cluster.nodes.map((n) => n.url) : [opts.endpoint!.replace(/\/v3\/?$/, '').replace(/\/$/, '')]);
  const outcomes: Outcome[] = [];
  const faults: FaultEvent[] = [];
  const pool = new Pool();
  const started = Date.now();
  const random = rng(opts.seed ^ 0x5eed);
  // After a fault, the first accepted change that was *sent* after it: one
  // sent before and answered after (it committed before the fault) proves nothing.
  // Only the faults still waiting for an accepted change are looked at: a million-operation run
  // injects about 1,500 faults, and each answer walking all of them is the run's own cost growing.
  const waiting = new Set<FaultEvent>();
  let faultsSeen = 0;
  const record = (o: Outcome) => {
    outcomes.push(o);
    if (o.status < 200 || o.status >= 300) return;
    for (; faultsSeen < faults.length; faultsSeen++) waiting.add(faults[faultsSeen]!);
    const sent = o.at - o.ms;
    for (const f of waiting) {
      if (sent <= f.at) continue;
      if (f.recoveredAfter === undefined) f.recoveredAfter = o.at - f.at;
      if (f.nodes && o.node && f.nodes[o.node] === undefined) f.nodes[o.node] = o.at - f.at;
      if (!f.nodes || Object.values(f.nodes).every((ms) => ms !== undefined)) waiting.delete(f);
    }
  };
  const consumer = cluster?.rabbit
    ? new NotificationConsumer(transportUrls(cluster.rabbit.url)[0]!, { exchange: 'cinder', topic: 'notifications', say })
    : undefined;
  try {
    if (consumer) await consumer.start();
    // The starting pool.
    const maker = new Client({ endpoints, token: opts.token, scenario, pool, seed: opts.seed, started, record: () => {} });
    for (let i = 0; i < scenario.volumes; i++) {
      const id = await maker.makeVolume(i < Math.round(scenario.volumes * scenario.multiattach));
      if (id) pool.add(id);
    }

    // Faults, on timers, while the clients run.
    const admin = databaseUrl ? sqlClient(databaseUrl, { max: 1, onnotice: () => {} }) : undefined;
    const faulting = startFaults({ opts, cluster, admin, faults, started, random, say });
    const progress = setInterval(() => {
      const n = (f: (s: number) => boolean) => outcomes.filter((o) => f(o.status)).length;
      say(
        `[${((Date.now() - started) / 1000).toFixed(0)} s] ops ${outcomes.length}${opts.ops ? `/${opts.ops}` : ''}, accepted ${n((s) => s >= 200 && s < 300)}, ` +
          `refused ${n((s) => s >= 400 && s < 500)} (busy ${n((s) => s === 409)}), failed ${n((s) => s >= 500)}, unknown ${n((s) => s === 0)}, faults ${faults.length}`,
      );
    }, 1000);

    // The clients.
    const deadline = opts.durationMs ? started + opts.durationMs : Infinity;
    // --ops counts what the report counts: operations made (a step with nothing to act on gives its slot back).
    let budget = opts.ops ?? Infinity;
    const clients = Array.from(
      { length: opts.clients },
      (_, i) => new Client({ endpoints, token: opts.token, scenario, pool, seed: opts.seed + i + 1, started, record }),
    );
    await Promise.all(
      clients.map(async (c) => {
        const minFaults = opts.minFaults ?? 0;
        const fewFaults = () =>
          faults.length < minFaults ||
          Object.entries(opts.minFaultsOf ?? {}).some(([kind, n]) => faults.filter((f) => f.kind === kind).length < n);
        while ((budget > 0 || fewFaults()) && Date.now() < deadline) {
          budget--;
          if (!(await c.step())) budget++;
        }
        // No new faults once the run's budget or time is spent: the last operations finish in peace.
        faulting.stop();
      }),
    );
    faulting.stop();
    clearInterval(progress);
    const durationMs = Date.now() - started;
    const endedBy: RunSummary['endedBy'] = budget <= 0 ? 'ops' : 'duration';
    if (faulting.failovers) {
      // A failover under way: the check needs its new primary, not the lost member back as a
      // standby (that can take a minute under load; the cluster's stop ends the wait for it).
      say('the clients are done; waiting for a failover under way to promote a primary');
      await faulting.failovers.promoted().catch(() => undefined);
    }

    // At rest, then the check.
    const { violations, checkText, acknowledged, notifications } = await (
      databaseUrl
        ? settleAndCheck(databaseUrl, outcomes, { atRest: Boolean(cluster), settleMs: opts.settleMs, say, consumer })
        : Promise.resolve({ violations: undefined, checkText: undefined, acknowledged: undefined, notifications: undefined })
    ).finally(() => admin?.end({ timeout: 5 }));
    const summary: RunSummary = {
      seed: opts.seed,
      scenario: scenario.name,
      nodes: opts.nodes,
      clients: opts.clients,
      durationMs,
      endedBy,
      outcomes,
      faults,
      violations,
      checkText,
      acknowledged,
      notifications,
    };
    if (opts.reportFile) writeFileSync(opts.reportFile, htmlReport(summary));
    return summary;
  } finally {
    await consumer?.stop();
    await cluster?.stop();
  }
}

interface FaultContext {
  opts: HarnessOptions;
  cluster: Cluster | undefined;
  /** a session of its own on the database, for pg-terminate */
  admin: ReturnType<typeof sqlClient> | undefined;
  faults: FaultEvent[];
  started: number;
  random: () => number;
  say: (line: string) => void;
}

/**
 * The faults of --faults, each on its own timer, until stop(): kills (one
 * node down at a time), pg-terminate, pg-restart, and Patroni failovers (a
 * loop; `failovers.promoted()` settles once no primary is being killed or promoted).
 */
function startFaults(ctx: FaultContext): { stop: () => void; failovers: Failovers | undefined } {
  const state = { stopping: false };
  const timers = [startKills(ctx, state), startTerminations(ctx, state), startRestarts(ctx, state), startRabbitRestarts(ctx, state)];
  const failovers = startFailovers(ctx, state);
  return {
    stop: () => {
      state.stopping = true;
      for (const t of timers) if (t) clearInterval(t);
    },
    failovers,
  };
}

/** SIGKILL a random node every killEveryMs, one down at a time, and start its replacement. */
function startKills(ctx: FaultContext, state: { stopping: boolean }): NodeJS.Timeout | undefined {
  const { opts, cluster, faults, started, random, say } = ctx;
  if (!(cluster && opts.faults.killEveryMs)) return undefined;
  // One node down at a time: a kill waits until the last one's replacement serves. On a
  // busy machine a node can take longer to start than the kill period, and killing on
  // regardless once took every node down (the clients then had nothing to talk to).
  let replacing = false;
  let skipped = 0;
  return setInterval(() => {
    if (state.stopping || cluster.nodes.length === 0) return;
    if (replacing) {
      if (++skipped % 10 === 1) say(`kill skipped: the last killed node's replacement is still starting (${skipped} skipped so far)`);
      return;
    }
    const victim = cluster.nodes[Math.floor(random() * cluster.nodes.length)]!;
    cluster.kill(victim);
    faults.push({ kind: 'kill', at: Date.now() - started, detail: `node ${victim.url}` });
    replacing = true;
    void cluster
      .replace(victim)
      .catch((err: unknown) => say(`could not start a node in place of ${victim.url}: ${String(err)}`))
      .finally(() => (replacing = false));
  }, opts.faults.killEveryMs);
}

/** pg_terminate_backend on up to three of volstate's sessions every pgTerminateEveryMs. */
function startTerminations(ctx: FaultContext, state: { stopping: boolean }): NodeJS.Timeout | undefined {
  const { opts, admin, faults, started } = ctx;
  if (!(admin && opts.faults.pgTerminateEveryMs)) return undefined;
  return setInterval(() => {
    if (state.stopping) return;
    void admin`
      SELECT count(pg_terminate_backend(pid))::int AS n FROM (
        SELECT pid FROM pg_stat_activity
        WHERE application_name LIKE 'volstate%' AND application_name <> 'volstate-check' AND pid <> pg_backend_pid()
        ORDER BY random() LIMIT 3) x`.then(
      ([r]) => faults.push({ kind: 'pg-terminate', at: Date.now() - started, detail: `${r?.n ?? 0} connections` }),
      () => undefined,
    );
  }, opts.faults.pgTerminateEveryMs);
}

/** Restart the embedded PostgreSQL every pgRestartEveryMs (fast shutdown), one restart at a time. */
function startRestarts(ctx: FaultContext, state: { stopping: boolean }): NodeJS.Timeout | undefined {
  const { opts, cluster, faults, started, say } = ctx;
  if (!(cluster?.restartDatabase && opts.faults.pgRestartEveryMs)) return undefined;
  let restarting = false;
  return setInterval(() => {
    if (state.stopping || restarting) return;
    restarting = true;
    const at = Date.now() - started;
    void cluster.restartDatabase!()
      .then(
        () => faults.push({ kind: 'pg-restart', at, detail: `down ${Date.now() - started - at} ms` }),
        (err: unknown) => say(`could not restart PostgreSQL: ${String(err)}`),
      )
      .finally(() => (restarting = false));
  }, opts.faults.pgRestartEveryMs);
}

/** Stop the harness's RabbitMQ and start it again every rabbitRestartEveryMs, one restart at a time. */
function startRabbitRestarts(ctx: FaultContext, state: { stopping: boolean }): NodeJS.Timeout | undefined {
  const { opts, cluster, faults, started, say } = ctx;
  if (!(cluster?.rabbit && opts.faults.rabbitRestartEveryMs)) return undefined;
  const rabbit = cluster.rabbit;
  let restarting = false;
  return setInterval(() => {
    if (restarting || state.stopping) return;
    restarting = true;
    const at = Date.now() - started;
    // Recorded as it begins: the API's next accepted change is measured from here (the broker is not on
    // its path), not from the end of the restart.
    const fault: FaultEvent = { kind: 'rabbit-restart', at, detail: 'restarting' };
    faults.push(fault);
    void rabbit
      .restart()
      .then(
        () => (fault.detail = `down ${Date.now() - started - at} ms`),
        (err: unknown) => say(`could not restart RabbitMQ: ${String(err)}`),
      )
      .finally(() => (restarting = false));
  }, opts.faults.rabbitRestartEveryMs);
}

interface Failovers {
  /** settles once no failover is between stalling the primary and a standby's promotion */
  promoted(): Promise<void>;
}

/** Kill Patroni's primary every pgFailoverEveryMs, once the cluster is whole (a synchronous standby back). */
function startFailovers(ctx: FaultContext, state: { stopping: boolean }): Failovers | undefined {
  const { opts, cluster, faults, started, say } = ctx;
  if (!cluster?.patroni || !opts.faults.pgFailoverEveryMs) return undefined;
  const patroni = cluster.patroni;
  const every = opts.faults.pgFailoverEveryMs;
  /** the failover under way, from the stall to the promotion */
  let promoting: Promise<unknown> = Promise.resolve();
  const loop = (async () => {
    for (;;) {
      for (const until = Date.now() + every; Date.now() < until && !state.stopping;) await new Promise((r) => setTimeout(r, 100));
      if (state.stopping) return;
      // Only a cluster with a synchronous standby fails over: the previous failover's lost member must be back.
      await patroni.waitHealthy(120_000);
      if (state.stopping) return;
      say('failover: the cluster is whole; killing the primary');
      let t0 = 0;
      const failover = (async () => {
        if (opts.faults.stallStandbyMs) {
          await patroni.stallReplication(opts.faults.stallStandbyMs);
          await new Promise((r) => setTimeout(r, opts.faults.stallStandbyMs! / 2));
        }
        t0 = Date.now();
        const lost = await patroni.killPrimary();
        faults.push({
          kind: 'pg-failover',
          at: t0 - started,
          detail: `${lost.name} lost`,
          nodes: Object.fromEntries(cluster.nodes.map((n) => [n.url, undefined])),
        });
        return { lost, fault: faults.at(-1)!, promoted: await patroni.waitPrimary(lost, 120_000) };
      })();
      promoting = failover.catch(() => undefined);
      const { lost, fault, promoted } = await failover;
      const promotedMs = Date.now() - t0;
      fault.detail = `${lost.name} lost, ${promoted.name} promoted after ${promotedMs} ms`;
      say(`failover: ${fault.detail}; bringing ${lost.name} back as a standby`);
      await patroni.restart(lost);
      await patroni.waitHealthy(120_000);
      fault.detail += `, ${lost.name} back as its standby after ${Date.now() - t0} ms`;
      say(`failover: ${lost.name} back as a standby after ${Date.now() - t0} ms`);
    }
  })();
  loop.catch((err: unknown) => {
    if (!state.stopping) say(`the failover fault stopped: ${String(err)}`);
  });
  return { promoted: () => promoting.then(() => undefined) };
}

/**
 * Run a read, again while the database cannot be reached (until `until`).
 * After a failover the lost member comes back as a standby: while it starts
 * it answers 57P03 ("the database system is starting up"), and postgres.js,
 * given every member's address, reports that instead of moving on to the
 * next one; its next connect tries the next address. Seen in CI on 61ca840.
 */
async function reachable<T>(read: () => Promise<T>, until: number): Promise<T> {
  for (;;) {
    try {
      return await read();
    } catch (err) {
      if (!isConnectionError(err) || Date.now() >= until) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Wait until nothing is in flight, then check the history and the answers
 * clients were given. The wait ends when nothing is in flight, or when the
 * work in flight stopped shrinking for settleMs (60 s): a backlog the
 * clients left (backups queue behind their lane) drains at its own pace,
 * and only a system that stopped making progress is judged unsettled.
 */
async function settleAndCheck(
  databaseUrl: string,
  outcomes: Outcome[],
  ctx: { atRest: boolean; settleMs: number | undefined; say: (line: string) => void; consumer: NotificationConsumer | undefined },
): Promise<Pick<RunSummary, 'violations' | 'checkText' | 'acknowledged' | 'notifications'>> {
  const sql = connect(databaseUrl, { max: 2, name: 'volstate-check' });
  try {
    const patience = ctx.settleMs ?? 60_000;
    const started = Date.now();
    let until = Date.now() + patience;
    let fewest = Infinity;
    for (;;) {
      const left = await reachable(() => unsettled(sql), until);
      if (left === 0 || Date.now() >= until) break;
      if (left < fewest) {
        if (fewest !== Infinity && Date.now() - started > 5000) ctx.say(`settling: ${left} resources still in flight`);
        fewest = left;
        until = Date.now() + patience;
      }
      await new Promise((r) => setTimeout(r, 1000));
    }
    if (ctx.consumer) await notificationsDrained(sql, ctx.consumer, patience, ctx.say);
    ctx.say(`settled in ${((Date.now() - started) / 1000).toFixed(1)} s; checking the history`);
    const ok = (s: number) => s >= 200 && s < 300;
    const requests = {
      accepted: outcomes.filter((o) => ok(o.status) && o.requestId).map((o) => o.requestId!),
      refused: outcomes.filter((o) => o.status >= 400 && o.status < 500 && o.requestId).map((o) => o.requestId!),
    };
    const report = await reachable(() => checkHistory(sql, { atRest: ctx.atRest, requests }), Date.now() + 60_000);
    const notified = ctx.consumer && (await checkNotifications(sql, ctx.consumer.received));
    if (notified) report.violations.push(...notified.violations);
    return {
      notifications: notified && {
        expected: notified.expected,
        received: notified.received,
        duplicates: notified.duplicates,
        missing: notified.violations.filter((v) => v.kind === 'notification-missing').length,
        reconnects: ctx.consumer!.reconnects,
        lagMs: lagPercentiles(ctx.consumer!.received),
      },
      violations: report.violations.length,
      checkText: formatReport(report),
      acknowledged: {
        total: requests.accepted.length,
        missing: report.violations.filter((v) => v.kind === 'accepted-not-in-history').length,
      },
    };
  } finally {
    await sql.end({ timeout: 5 });
  }
}

/** From each transition to its notification's first arrival at the consumer: p50, p99 (ms). */
function lagPercentiles(received: ReceivedNotification[]): [number, number] {
  const seen = new Set<string>();
  const lags: number[] = [];
  for (const r of received) {
    if (seen.has(r.message_id) || r.happenedAt === undefined || r.receivedAt === undefined) continue;
    seen.add(r.message_id);
    lags.push(r.receivedAt - r.happenedAt);
  }
  lags.sort((a, b) => a - b);
  const at = (p: number) => (lags.length ? lags[Math.min(lags.length - 1, Math.floor(p * lags.length))]! : 0);
  return [at(0.5), at(0.99)];
}

/**
 * The relay has confirmed every transition (its position at the newest) and every notification
 * the history calls for has reached the consumer. Not "the consumer was quiet for a second": a
 * message the broker confirmed just before a restart reaches a consumer that reconnects later
 * than that (a run's check once called such a one missing). Gives up after `patience` without
 * progress (the relay moving on, or more arriving), and the check then says what is missing.
 */
async function notificationsDrained(sql: postgres.Sql, consumer: NotificationConsumer, patience: number, say: (line: string) => void) {
  let until = Date.now() + patience;
  let fewest = Infinity;
  let arrived = consumer.received.length;
  for (;;) {
    const lag = (await reachable(() => relayLag(sql), until))?.lag ?? Infinity;
    if (lag === 0) {
      const check = await reachable(() => checkNotifications(sql, consumer.received), until);
      if (check && !check.violations.some((v) => v.kind === 'notification-missing')) return;
    }
    if (lag < fewest || consumer.received.length > arrived) {
      fewest = Math.min(fewest, lag);
      arrived = consumer.received.length;
      until = Date.now() + patience;
    }
    if (Date.now() >= until) {
      say(
        lag === 0
          ? `notifications: the relay has sent everything, and nothing more arrived for ${patience} ms; checking what arrived`
          : `notifications: the relay is ${lag} transitions behind and made no progress for ${patience} ms; checking what arrived`,
      );
      return;
    }
    await new Promise((r) => setTimeout(r, lag === 0 ? 1000 : 250));
  }
}

export { textReport };
