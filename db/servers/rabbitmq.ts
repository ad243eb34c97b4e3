/**
 * A RabbitMQ on loopback: Debian's `rabbitmq-server`, a node of its own
 * (own name, data directory, Erlang cookie) listening on loopback only —
 * AMQP and Erlang distribution on free ports, epmd on 127.0.0.1 — no
 * plugins. For the notifications test and the harness (`--notify`,
 * `rabbit-restart`): `down()` stops the broker and `up()` starts it again on
 * the same ports and data (what survives is what was durable), `kill()`
 * SIGKILLs it.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './embedded.ts';

export const RABBIT_SERVER = '/usr/lib/rabbitmq/bin/rabbitmq-server';

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

export async function startRabbit(opts: { dir?: string } = {}): Promise<Rabbit> {
  const dir = opts.dir ?? mkdtempSync(join(tmpdir(), 'volstate-rabbit-'));
  mkdirSync(dir, { recursive: true });
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
    // a broker that fails to start (its directory gone under a restart at a run's end) dumps here, not in the cwd
    ERL_CRASH_DUMP: join(dir, 'erl_crash.dump'),
  };
  // rabbitmqctl, without blocking the event loop: the harness's clients and consumer run in the
  // same process (a spawnSync here stalled them for the whole of each broker restart, ~7 s).
  const ctl = (...args: string[]) =>
    new Promise<{ status: number }>((resolve) =>
      execFile('/usr/lib/rabbitmq/bin/rabbitmqctl', ['-n', node, ...args], { env }, (err) =>
        resolve({ status: err ? (typeof err.code === 'number' ? err.code : 1) : 0 }),
      ),
    );
  let server: ChildProcess | undefined;
  const start = async () => {
    server = spawn(RABBIT_SERVER, [], { env, stdio: ['ignore', 'ignore', 'ignore'], detached: true });
    const child = server;
    let exited = false;
    child.once('exit', () => (exited = true));
    // rabbitmqctl wait: until the broker's applications run (it reads the pid file the server writes).
    for (const until = Date.now() + RABBIT_START_MS; ;) {
      if (exited) throw new Error(`rabbitmq-server exited during its start; its logs are in ${dir}/log`);
      if ((await ctl('await_startup', '--timeout', '5')).status === 0) break;
      if (Date.now() > until) throw new Error(`RabbitMQ did not start in ${RABBIT_START_MS} ms (logs in ${dir}/log)`);
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const stopServer = async () => {
    if (!server || server.exitCode !== null) return;
    const child = server;
    const exited = new Promise((r) => child.once('exit', r));
    await ctl('stop'); // returns once the node has halted
    // A node that would not stop is killed, with its whole process group.
    const timer = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }, 30_000);
    if (child.exitCode === null && child.signalCode === null) await exited;
    clearTimeout(timer);
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
