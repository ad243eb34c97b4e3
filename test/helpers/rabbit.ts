/**
 * A real RabbitMQ for tests (db/servers/rabbitmq.ts), its Debian packages
 * installed when missing, and oslo.messaging's own notification listener
 * (test/helpers/oslo-listener.py, Debian's python3-oslo.messaging, the
 * library Ceilometer consumes with), collecting what it is handed.
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { RABBIT_SERVER, startRabbit as startServer, type Rabbit } from '../../db/servers/rabbitmq.ts';
import { ensureDebianPackages } from './keystone.ts';
import { until } from './wait.ts';

export { RABBIT_START_MS, type Rabbit } from '../../db/servers/rabbitmq.ts';

export const RABBIT_PACKAGES: Record<string, string> = {
  'rabbitmq-server': RABBIT_SERVER,
  'python3-oslo.messaging': '/usr/lib/python3/dist-packages/oslo_messaging/__init__.py',
};

export async function startRabbit(): Promise<Rabbit> {
  ensureDebianPackages(RABBIT_PACKAGES);
  return startServer();
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
