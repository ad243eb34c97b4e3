/**
 * A volstate for Tempest: one `volstate serve` on a loopback port with its
 * own embedded PostgreSQL and the fake driver, registered in Keystone's
 * catalog as `volumev3` and `block-storage` at
 * `http://127.0.0.1:PORT/v3/%(project_id)s`, as a Cinder is.
 *
 * In keystone mode it validates tokens with the service user `volstate`
 * (role `service` in project `service`), as keystonemiddleware does.
 */
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { freePort } from '../../db/servers/embedded.ts';
import type { Keystone } from '../helpers/keystone.ts';
import { volstateArgs } from '../../src/launch.ts';

export interface Server {
  readonly url: string;
  stop(): Promise<void>;
}

/** The service user volstate validates tokens with; returns the environment that names it. */
export async function serviceUser(keystone: Keystone): Promise<Record<string, string>> {
  const project = await keystone.createProject('service');
  const password = `volstate-${process.pid}`;
  await keystone.createUser('volstate', password, project, ['service', 'admin']);
  return {
    VOLSTATE_AUTH: 'keystone',
    VOLSTATE_KEYSTONE_URL: keystone.url,
    VOLSTATE_KEYSTONE_USER: 'volstate',
    VOLSTATE_KEYSTONE_PASSWORD: password,
    VOLSTATE_KEYSTONE_PROJECT: 'service',
  };
}

export async function startServer(keystone: Keystone, auth: 'keystone' | 'noauth', dir: string): Promise<Server> {
  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  const env = auth === 'keystone' ? await serviceUser(keystone) : { VOLSTATE_AUTH: 'noauth' };
  for (const type of ['volumev3', 'block-storage']) {
    const service = (
      await keystone.api('POST', '/services', { service: { type, name: type === 'volumev3' ? 'cinderv3' : 'block-storage' } })
    ).service.id;
    for (const iface of ['public', 'internal', 'admin']) {
      await keystone.api('POST', '/endpoints', {
        endpoint: { service_id: service, interface: iface, region_id: 'RegionOne', url: `${url}/v3/%(project_id)s` },
      });
    }
  }
  const proc = spawn(process.execPath, await volstateArgs('serve', '--port', String(port)), {
    env: {
      ...process.env,
      ...env,
      VOLSTATE_DATA_DIR: join(dir, 'volstate'),
      VOLSTATE_DRIVER: 'fake',
      VOLSTATE_LOG_FORMAT: 'json',
      LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let err = '';
  const exited = new Promise<number | null>((r) => proc.on('exit', (code) => r(code)));
  await new Promise<void>((ready, fail) => {
    proc.stderr.on('data', (b: Buffer) => {
      err = (err + b.toString()).slice(-100_000);
      if (err.includes('serving the Cinder v3 API at')) ready();
    });
    void exited.then((code) => fail(new Error(`volstate exited (${code}) before it was ready:\n${err}`)));
  });
  return {
    url,
    async stop() {
      proc.kill('SIGTERM');
      await exited;
    },
  };
}
