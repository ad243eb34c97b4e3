/**
 * A real RabbitMQ for tests: Debian's `rabbitmq-server`, a node of its own
 * (own name, data directory, Erlang cookie) listening on loopback only —
 * AMQP and Erlang distribution on free ports, epmd on 127.0.0.1 — no
 * plugins. `down()` stops the broker and `up()` starts it again on the same
 * ports and data (what survives is what was durable), `kill()` SIGKILLs it.
 *
 * And oslo.messaging's own notification listener (test/helpers/oslo-listener.py,
 * Debian's python3-oslo.messaging, the library Ceilometer consumes with),
 * collecting what it is handed.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { freePort } from '../../db/servers/embedded.ts';
import { ensureDebianPackages } from './keystone.ts';
import { until } from './wait.ts';

export const RABBIT_PACKAGES: Record<string, string> = {
  'rabbitmq-server': '/usr/lib/rabbitmq/bin/rabbitmq-server',
  'python3-oslo.messaging': '/usr/lib/python3/dist-packages/oslo_messaging/__init__.py',
};

/** How long a broker may take to start: about 8 s on a quiet machine, several times that under load. A bound on a setup. */
export const RABBIT_START_MS = 180_000;

export interface Rabbit {
  /** oslo's transport_url: `rabbit://guest:guest@127.0.0.1:<port>/` */
  readonly url: string;
  readonly port: number;
  /** stop the broker, keeping its data and ports (what survives is what was durable) */
  down(): Promise<void>;
  /** start it again after down() */
  up(): Promise<void>;
  restart(): Promise<void>;
  kill(): void;
  stop(): Promise<void>;
}

export async function startRabbit(): Promise<Rabbit> {
  ensureDebianPackages(RABBIT_PACKAGES);
  const dir = mkdtempSync(join(tmpdir(), 'volstate-rabbit-'));
  const [port, dist] = [await freePort(), await freePort()];
  const node = `volstate-${process.pid}-${port}@localhost`;
  writeFileSync(join(dir, 'rabbitmq.conf'), `listeners.tcp.1 = 127.0.0.1:${port}\n`);
  writeFileSync(join(dir, 'enabled_plugins'), '[].\n');
  const env = {
    ...process.env,
    HOME: dir, // its Erlang cookie
    RABBITMQ_NODENAME: node,
    RABBITMQ_BASE: dir,
    RABBITMQ_MNESIA_BASE: join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: join(dir, 'log'),
    RABBITMQ_CONFIG_FILE: join(dir, 'rabbitmq'),
    RABBITMQ_ENABLED_PLUGINS_FILE: join(dir, 'enabled_plugins'),
    RABBITMQ_PID_FILE: join(dir, 'pid'),
    RABBITMQ_DIST_PORT: String(dist),
    RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS: '-kernel inet_dist_use_interface {127,0,0,1}',
    ERL_EPMD_ADDRESS: '127.0.0.1',
  };
  const ctl = (...args: string[]) => spawnSync('/usr/lib/rabbitmq/bin/rabbitmqctl', ['-n', node, ...args], { env, encoding: 'utf8' });
  let server: ChildProcess | undefined;
  const start = async () => {
    server = spawn('/usr/lib/rabbitmq/bin/rabbitmq-server', [], { env, stdio: ['ignore', 'ignore', 'ignore'], detached: true });
    const child = server;
    let exited = false;
    child.once('exit', () => (exited = true));
    // rabbitmqctl wait: until the broker's applications run (it reads the pid file the server writes).
    await until(
      () => {
        if (exited) throw new Error(`rabbitmq-server exited during its start; its logs are in ${dir}/log`);
        return ctl('await_startup', '--timeout', '5').status === 0;
      },
      RABBIT_START_MS,
      `RabbitMQ to start (logs in ${dir}/log)`,
    );
  };
  const stopServer = async () => {
    if (!server || server.exitCode !== null) return;
    const child = server;
    ctl('stop'); // returns once the node has halted
    // A node that would not stop is killed, with its whole process group.
    await until(() => child.exitCode !== null || child.signalCode !== null, 30_000, 'rabbitmq-server to exit').catch(() =>
      process.kill(-child.pid!, 'SIGKILL'),
    );
  };
  await start();
  return {
    url: `rabbit://guest:guest@127.0.0.1:${port}/`,
    port,
    down: stopServer,
    up: start,
    async restart() {
      await stopServer();
      await start();
    },
    kill() {
      // The whole process group: the script, beam.smp and its port programs.
      if (server?.pid) process.kill(-server.pid, 'SIGKILL');
    },
    async stop() {
      await stopServer();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What oslo.messaging's listener was handed: one notification. */
export interface Received {
  priority: string;
  publisher_id: string;
  event_type: string;
  payload: Record<string, unknown>;
  message_id: string;
  timestamp: string;
  request_id: string | null;
}

export interface Listener {
  readonly received: Received[];
  stop(): Promise<void>;
}

/** oslo.messaging's notification listener on the broker, as Ceilometer runs one. Resolves once it listens. */
export async function startOsloListener(
  url: string,
  opts: { exchange?: string; topic?: string; durable?: boolean } = {},
): Promise<Listener> {
  const script = new URL('./oslo-listener.py', import.meta.url).pathname;
  const child = spawn(
    '/usr/bin/python3',
    [script, url, opts.exchange ?? 'cinder', opts.topic ?? 'notifications', String(opts.durable ?? false)],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const received: Received[] = [];
  let ready = false;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'ready') ready = true;
    else if (line.startsWith('{')) received.push(JSON.parse(line) as Received);
  });
  await until(
    () => {
      if (child.exitCode !== null) throw new Error(`the oslo listener exited (${child.exitCode}): ${stderr}`);
      return ready;
    },
    60_000,
    'the oslo listener to listen',
  );
  return {
    received,
    async stop() {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await gone;
    },
  };
}
