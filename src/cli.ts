/**
 * volstate's command line.
 *
 *   volstate serve [--host H] [--port N]   API and worker in one process (npm start)
 *   volstate api [--host H] [--port N]     the API alone
 *   volstate worker                        a worker alone
 *   volstate db [--port N]                 the embedded PostgreSQL alone; prints its DATABASE_URL
 *   volstate migrate                       apply migrations and exit
 *   volstate diagrams [--check]            write diagrams/ from the machines (or check them)
 *
 * Any number of api, worker and serve processes may share one database
 * (DATABASE_URL): Active/Active.
 *
 * Configuration comes from the environment (see docs/configuration.md);
 * flags override HOST and PORT.
 */
import { auditUsage, lastMonth } from './notify/audit.ts';
import { parseArgs } from 'node:util';
import { join } from 'node:path';
import { APP_DATABASE, connect, ensureDatabase, locateDatabase } from '../db/connect.ts';
import { runningEmbedded, startEmbedded } from '../db/servers/embedded.ts';
import { migrate } from '../db/migrate.ts';
import { purge } from '../db/retention.ts';
import { ConfigError, loadConfig, type Config } from './config.ts';
import { checkHistory, formatReport } from './check/history.ts';
import { parseDuration } from './duration.ts';
import { parseFaults, runHarness, textReport } from './harness/run.ts';
import { loadScenario, scenarioNames } from './harness/scenario.ts';
import { checkDiagrams, writeDiagrams } from './diagrams.ts';
import { closeOnSignals, serve, surviveLostConnections } from './server.ts';

const USAGE = `usage: volstate <command> [options]     (npm start runs volstate serve)

commands:
  serve [--host H] [--port N]   serve the Cinder v3 API and run a worker (default ${'127.0.0.1:8776'})
  api [--host H] [--port N]     serve the API only
  worker                        run a worker only
  db [--port N]                 run the embedded PostgreSQL only and print its DATABASE_URL, for
                                several nodes on one machine: DATABASE_URL=... volstate serve --port N
  migrate                       apply database migrations and exit
  diagrams [--check]            write diagrams/ from machines/ (--check: fail if they are stale)
  purge --before 30d            remove deleted resources and history older than that (also a date,
                                2026-11-01), in small batches; workers do it themselves with
                                VOLSTATE_RETENTION
  audit [--start D --end D]     Cinder's usage audit: volume.exists and snapshot.exists for what existed
                                in the period (default the last whole month), to VOLSTATE_NOTIFY_URL
  check [--in-flight]           check the history in the database against the machines and the
                                invariants (exit 1 on any violation); --in-flight: the system is
                                still running, skip the end-state checks

  harness [options]             run a concurrency scenario with faults, then check the history:
      --nodes N | --endpoint URL   start N nodes on one database (default 3), or drive any endpoint
      --scenario NAME|FILE         harness/scenarios/NAME.json (default mixed; --scenarios lists them)
      --clients C --ops K | --duration 30s --seed S --token user:project
      --faults kill:every=5s,pg-terminate:every=7s,pg-restart:every=30s,driver-fail:0.05,driver-latency:50ms
               pg-failover:every=30s (with --db patroni: lose the primary's machine, Patroni promotes the standby)
      --db embedded|patroni        the database the harness starts: one embedded server (default), or etcd,
                                   Patroni and two PostgreSQL servers with a synchronous standby (Debian's
                                   patroni, etcd-server, postgresql-15; installed when missing, as root);
                                   patroni-async: an asynchronous standby (with stall-standby:1s before each
                                   pg-failover, the check finds the acknowledged changes it loses)
               rabbit-restart:every=20s (implies --notify: stop the broker and start it again)
      --notify                     start a RabbitMQ (Debian's rabbitmq-server); the nodes send Cinder's
                                   notifications to it; the check compares what a consumer received
                                   with the history (every transition's, in order per resource and priority)
      --report FILE.html --database-url URL (with --endpoint: the database to check)
      --node-logs DIR              each node's log to DIR/node<i>.log (level: NODE_LOG_LEVEL, default error)
  help, -h, --help              this text

environment: DATABASE_URL, VOLSTATE_DATA_DIR, HOST, PORT, LOG_LEVEL, VOLSTATE_LOG_FORMAT, VOLSTATE_* (see docs/configuration.md)`;

/**
 * One command's part of the usage (`volstate purge --help`): its line in
 * USAGE and the lines indented under it; undefined for an unknown command.
 */
function usageOf(command: string): string | undefined {
  const lines = USAGE.split('\n');
  const start = lines.findIndex((l) => l.startsWith(`  ${command} `) || l === `  ${command}`);
  if (start < 0) return undefined;
  const end = lines.findIndex((l, i) => i > start && !/^ {3,}\S/.test(l));
  const body = lines.slice(start, end < 0 ? undefined : end).map((l) => l.slice(2));
  return `usage: volstate ${body.join('\n')}\n\n(volstate --help lists every command and the environment)`;
}

function dbOf(v: unknown): 'embedded' | 'patroni' | 'patroni-async' | undefined {
  if (v === undefined || v === 'embedded' || v === 'patroni' || v === 'patroni-async') return v;
  fail(`--db ${JSON.stringify(v)}: expected embedded, patroni or patroni-async`);
}

function fail(message: string): never {
  console.error(`volstate: ${message}`);
  process.exit(2);
}

function withFlags(config: Config, values: { host?: string | undefined; port?: string | undefined }, command: string): Config {
  const out = { ...config };
  if (values.host !== undefined) out.host = values.host;
  if (values.port !== undefined && command !== 'db') {
    const port = Number(values.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port ${values.port}: expected 0-65535`);
    out.port = port;
  }
  return out;
}

async function main(argv: string[]): Promise<void> {
  if (argv.length === 0 || ['-h', '--help', 'help'].includes(argv[0]!)) {
    console.log(USAGE);
    return;
  }
  const command = argv[0]!;
  const rest = argv.slice(1);
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: rest,
      options: {
        host: { type: 'string' },
        port: { type: 'string' },
        check: { type: 'boolean' },
        'in-flight': { type: 'boolean' },
        nodes: { type: 'string' },
        endpoint: { type: 'string' },
        scenario: { type: 'string' },
        scenarios: { type: 'boolean' },
        clients: { type: 'string' },
        ops: { type: 'string' },
        duration: { type: 'string' },
        seed: { type: 'string' },
        faults: { type: 'string' },
        report: { type: 'string' },
        'database-url': { type: 'string' },
        db: { type: 'string' },
        'node-logs': { type: 'string' },
        notify: { type: 'boolean' },
        token: { type: 'string' },
        before: { type: 'string' },
        start: { type: 'string' },
        end: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      allowPositionals: false,
    }));
  } catch (err) {
    fail(`${(err as Error).message}\n${USAGE}`);
  }
  if (values.help) {
    console.log(usageOf(command) ?? USAGE);
    return;
  }
  let config: Config;
  try {
    config = withFlags(loadConfig(), { host: values.host as string | undefined, port: values.port as string | undefined }, command);
  } catch (err) {
    if (err instanceof ConfigError) fail(err.message);
    throw err;
  }
  switch (command) {
    case 'serve':
    case 'api':
    case 'worker': {
      surviveLostConnections();
      // Node exits with 0 when nothing is left to wait on: a start whose database call can
      // never settle would end as a success. It is a failure, said as one, with its last step.
      let step = 'starting';
      const stalled = () => {
        console.error(
          `volstate: the start stalled while ${step}: nothing left to wait on (a database call that can never answer); exiting`,
        );
        process.exit(1);
      };
      process.once('beforeExit', stalled);
      const running = await serve(config, {
        api: command !== 'worker',
        worker: command !== 'api',
        progress: (msg) => {
          step = msg;
          console.error(`volstate: ${msg}`);
        },
      });
      process.removeListener('beforeExit', stalled);
      closeOnSignals(running);
      const where = `database ${config.databaseUrl ? 'DATABASE_URL' : `embedded, ${config.dataDir}`}, backends ${config.backends.map((b) => `${b.name} (${b.driver})`).join(', ')}`;
      if (running.url) console.error(`volstate: serving the Cinder v3 API at ${running.url}/v3 (${where})`);
      if (running.worker) console.error(`volstate: worker ${running.worker.id} running (${where})`);
      return;
    }
    case 'db': {
      // A node (npm start) runs it already: its URL, to share it.
      const running = runningEmbedded(join(config.dataDir, 'db'));
      if (running) {
        console.log(`DATABASE_URL=${running.urlFor(APP_DATABASE)}`);
        console.error(
          `volstate: the embedded PostgreSQL under ${join(config.dataDir, 'db')} is running already (process ${running.pid}); share it with the DATABASE_URL above`,
        );
        return;
      }
      const db = await startEmbedded({ dir: join(config.dataDir, 'db'), port: values.port ? Number(values.port) : undefined });
      await ensureDatabase(db.adminUrl, APP_DATABASE);
      const url = db.urlFor(APP_DATABASE);
      await migrate(url);
      closeOnSignals({ close: () => db.stop() });
      console.log(`DATABASE_URL=${url}`);
      console.error('volstate: the embedded PostgreSQL is running; start nodes with the DATABASE_URL above (Ctrl-C stops it)');
      return;
    }
    case 'migrate': {
      const location = await locateDatabase({ url: config.databaseUrl, dataDir: config.dataDir, share: true });
      try {
        await migrate(location.url);
        console.error('volstate: migrations applied');
      } finally {
        await location.embedded?.stop();
      }
      return;
    }
    case 'purge': {
      const text = values.before;
      if (typeof text !== 'string') fail('purge needs --before, e.g. --before 30d (older than 30 days) or --before 2026-11-01');
      let before: Date;
      if (/^\d{4}-\d{2}-\d{2}/.test(text)) before = new Date(text);
      else {
        try {
          before = new Date(Date.now() - parseDuration(text, '--before'));
        } catch (err) {
          fail((err as Error).message);
        }
      }
      if (Number.isNaN(before.getTime())) fail(`--before ${text}: not a date`);
      const location = await locateDatabase({ url: config.databaseUrl, dataDir: config.dataDir, share: true });
      const sql = connect(location.url, { max: 2, name: 'volstate-purge' });
      try {
        await migrate(location.url);
        const started = performance.now();
        const report = await purge(sql, before);
        const seconds = (performance.now() - started) / 1000;
        const rows = Object.entries(report.rows)
          .map(([t, n]) => `${n} ${t}`)
          .join(', ');
        console.log(
          `volstate: purged what was deleted before ${before.toISOString()} in ${seconds.toFixed(1)} s: ${rows}; history: ${report.partitions.length} monthly partitions dropped (${report.partitions.join(', ') || 'none'}), ${report.historyRows} rows from the default partition`,
        );
      } finally {
        await sql.end({ timeout: 5 });
        await location.embedded?.stop();
      }
      return;
    }
    case 'audit': {
      // Cinder's cinder-volume-usage-audit: volume.exists and snapshot.exists for a period (default the last whole month).
      if (!config.notify) fail('audit sends notifications: set VOLSTATE_NOTIFY_URL (rabbit://user:password@host:5672/)');
      const date = (flag: string, v: unknown) => {
        if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}/.test(v) || Number.isNaN(new Date(v).getTime()))
          fail(`--${flag} ${String(v)}: a date, e.g. 2026-11-01`);
        return new Date(v);
      };
      const period =
        values.start === undefined && values.end === undefined
          ? lastMonth()
          : { begin: date('start', values.start), end: date('end', values.end) };
      if (period.begin >= period.end) fail(`--start must be before --end`);
      const location = await locateDatabase({ url: config.databaseUrl, dataDir: config.dataDir, share: true });
      const sql = connect(location.url, { max: 2, name: 'volstate-audit' });
      try {
        await migrate(location.url);
        const counts = await auditUsage(sql, config.notify, period);
        console.log(
          `volstate: usage audit ${period.begin.toISOString()} to ${period.end.toISOString()}: ${counts.volumes} volume.exists, ${counts.snapshots} snapshot.exists, confirmed by the broker`,
        );
      } finally {
        await sql.end({ timeout: 5 });
        await location.embedded?.stop();
      }
      return;
    }
    case 'check': {
      const location = await locateDatabase({ url: config.databaseUrl, dataDir: config.dataDir, share: true });
      const sql = connect(location.url, { max: 2, name: 'volstate-check' });
      try {
        const report = await checkHistory(sql, { atRest: !values['in-flight'] });
        console.log(formatReport(report));
        if (report.violations.length > 0) process.exitCode = 1;
      } finally {
        await sql.end({ timeout: 5 });
        await location.embedded?.stop();
      }
      return;
    }
    case 'harness': {
      if (values.scenarios) {
        for (const name of scenarioNames()) console.log(`${name.padEnd(28)} ${loadScenario(name).doc}`);
        return;
      }
      const whole = (v: unknown, what: string, fallback: number) => {
        if (v === undefined) return fallback;
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0) fail(`${what} ${JSON.stringify(v)}: expected a whole number`);
        return n;
      };
      const endpoint = values.endpoint as string | undefined;
      const seed = whole(values.seed, '--seed', Date.now() % 2 ** 31);
      const ops = values.ops === undefined ? undefined : whole(values.ops, '--ops', 0);
      const durationMs =
        values.duration === undefined ? (ops === undefined ? 30_000 : undefined) : parseDuration(String(values.duration), '--duration');
      const summary = await runHarness({
        scenario: (values.scenario as string | undefined) ?? 'mixed',
        nodes: endpoint ? 0 : whole(values.nodes, '--nodes', 3),
        endpoint,
        clients: whole(values.clients, '--clients', 16),
        ops,
        durationMs,
        seed,
        faults: parseFaults(values.faults as string | undefined),
        db: dbOf(values.db),
        nodeLogs: values['node-logs'] as string | undefined,
        notify: values.notify === true,
        // --db patroni starts its own: DATABASE_URL from the environment is not the one to use then.
        databaseUrl:
          (values['database-url'] as string | undefined) ??
          (values.db === 'patroni' || values.db === 'patroni-async' ? undefined : config.databaseUrl),
        token: (values.token as string | undefined) ?? 'admin:harness',
        reportFile: values.report as string | undefined,
        progress: (line) => console.error(`volstate harness: ${line}`),
      });
      console.log(textReport(summary));
      if (summary.checkText && summary.violations) console.log(summary.checkText);
      if (values.report) console.error(`volstate harness: report written to ${String(values.report)}`);
      if (summary.violations) process.exitCode = 1;
      return;
    }
    case 'diagrams': {
      if (values.check) {
        const stale = await checkDiagrams();
        if (stale.length) fail(`stale diagrams: ${stale.join(', ')}; run npm run diagrams`);
        console.error('volstate: diagrams are up to date');
      } else {
        const written = await writeDiagrams();
        console.error(`volstate: wrote ${written.join(', ')}`);
      }
      return;
    }
    default:
      fail(`unknown command ${command}\n${USAGE}`);
  }
}

main(process.argv.slice(2)).catch((err) => {
  console.error(`volstate: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
