/**
 * A real Keystone for tests and for `npm run test:tempest`: Debian's
 * `keystone` package (22), SQLite in WAL mode, fernet tokens, served by
 * Debian's uwsgi on a loopback port, one process and one thread (SQLite
 * with more gives "database is locked"), `Connection: close` on every answer
 * (uwsgi's http socket resets kept-alive connections otherwise).
 *
 * Nothing of the machine's own Keystone configuration is used: every file
 * lives in a temporary directory, so a run leaves nothing behind.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from '../../db/servers/embedded.ts';
import { until } from './wait.ts';
import type { KeystoneAuthOptions } from '../../src/auth/keystone.ts';

/** Debian packages and the command each provides. */
export const KEYSTONE_PACKAGES: Record<string, string> = {
  keystone: '/usr/bin/keystone-manage',
  'uwsgi-core': '/usr/bin/uwsgi',
  'uwsgi-plugin-python3': '/usr/lib/uwsgi/plugins/python3_plugin.so',
};

/**
 * Installs the Debian packages whose file is missing, as `.ci/run` installs
 * the cinder CLI. Keystone's package is pre-seeded to configure nothing
 * itself (no database, no admin, no endpoint: this helper does it).
 */
export function ensureDebianPackages(packages: Record<string, string>): void {
  const missing = Object.entries(packages)
    .filter(([, file]) => !existsSync(file))
    .map(([name]) => name);
  if (missing.length === 0) return;
  const preseed = ['configure_db', 'create-admin-tenant', 'register-endpoint', 'dbconfig-install']
    .map((q) => `keystone keystone/${q} boolean false`)
    .join('\n');
  const steps = [
    ['debconf-set-selections', [], preseed],
    ['apt-get', ['update', '-qq'], undefined],
    ['apt-get', ['install', '-y', '-qq', ...missing], undefined],
  ] as const;
  for (const [cmd, args, input] of steps) {
    const r = spawnSync(cmd, [...args], { input, encoding: 'utf8', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    if (r.status !== 0)
      throw new Error(`installing ${missing.join(' ')}: ${cmd} ${args.join(' ')} failed (${r.status ?? r.error}):\n${r.stderr}`);
  }
}

/**
 * How long a test may give Keystone to start (its setup hook's timeout):
 * four keystone-manage programs and the uwsgi app, each mostly Python
 * start-up — about 30 s on a quiet machine, about two minutes under two CPU
 * hogs (npm run test:stress measured 118 s). A bound on a setup, not a race.
 */
export const KEYSTONE_START_MS = 300_000;

/**
 * How long the app under test waits for this Keystone's answer
 * (VOLSTATE_KEYSTONE_TIMEOUT_MS is 5 s in production). The test Keystone is
 * one Python process with one thread: under two CPU hogs and three volstate
 * nodes it gets a fraction of a core, and a validation measured 2.3–7.5 s
 * (npm run test:stress). These tests check what each role may do, not
 * Keystone's latency; a Keystone that does not answer at all is its own test
 * (a closed port, 503).
 */
export const KEYSTONE_ANSWER_MS = 30_000;

/** The service user volstate validates tokens as, which each Keystone test creates in project `service`. */
export const SERVICE_USER = { name: 'volstate', password: 'volstate-secret', project: 'service' } as const;

/** volstate's Keystone settings for SERVICE_USER; `url` is set once the test's Keystone is up. */
export function serviceAuthOptions(): KeystoneAuthOptions {
  return {
    url: '',
    user: SERVICE_USER.name,
    password: SERVICE_USER.password,
    project: SERVICE_USER.project,
    domain: 'default',
    cacheSeconds: 300,
    maxEntries: 1000,
    timeoutMs: KEYSTONE_ANSWER_MS,
  };
}

export interface KeystoneOptions {
  /** token lifetime in seconds (Keystone's [token] expiration); default 3600 */
  tokenLifetime?: number;
}

export interface Keystone {
  /** http://127.0.0.1:PORT/v3 */
  readonly url: string;
  readonly adminPassword: string;
  /** a project-scoped token of the bootstrap admin (cached) */
  adminToken(): Promise<string>;
  /** a token for a user, scoped to a project (by id), with its body */
  token(user: string, password: string, projectId: string): Promise<{ token: string; body: any }>;
  /** a Keystone API call as the admin; throws unless 2xx */
  api(method: string, path: string, body?: unknown, token?: string): Promise<any>;
  createProject(name: string): Promise<string>;
  /** a user with a role on a project; returns the user's id */
  createUser(name: string, password: string, projectId: string, roles: string[]): Promise<string>;
  /** a role's id by name, created if missing */
  role(name: string): Promise<string>;
  stop(): Promise<void>;
  /** uwsgi's and Keystone's logs so far, for a failure message */
  logs(): string;
}

function run(cmd: string, args: string[]): void {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status ?? r.error}):\n${r.stderr.slice(-2000)}`);
}

/** The keystone.conf of one test Keystone, all of whose files live in `dir`. */
function configFor(dir: string, tokenLifetime: number): string {
  return [
    '[DEFAULT]',
    `log_file = ${join(dir, 'keystone.log')}`,
    '[database]',
    `connection = sqlite:///${join(dir, 'keystone.db')}`,
    '[token]',
    'provider = fernet',
    `expiration = ${tokenLifetime}`,
    '[fernet_tokens]',
    `key_repository = ${join(dir, 'fernet-keys')}`,
    '[credential]',
    `key_repository = ${join(dir, 'credential-keys')}`,
    // Keystone's cache, in the process (it is one process): with it off, every authenticated call
    // (a token's validation, the catalogue, the role assignments) went to the database, and each
    // cost 0.4–0.5 s of CPU here; on, 0.09 s. A deployment caches too (memcached). Revocation and
    // expiry still hold: a revocation invalidates the cached token, and expiry is checked on use.
    '[cache]',
    'enabled = true',
    'backend = dogpile.cache.memory',
    // bcrypt at its least cost (4; Keystone's default is 12). At 12, each
    // password login costs ~0.2 s of CPU here, and this Keystone serves one
    // request at a time: under load the app's token validation queued
    // behind the tests' logins past its 5 s timeout (a 503 in keystone.test.ts
    // under npm run test:stress). What these tests exercise is the token
    // flow, not password hashing.
    '[identity]',
    'password_hash_rounds = 4',
    '',
  ].join('\n');
}

const ADMIN_PASSWORD = 'admin-volstate-test';

/**
 * The bootstrapped state every test Keystone starts from — its SQLite
 * database, fernet and credential keys, the admin — made once per machine
 * and Keystone version by the four keystone-manage programs, then copied.
 * Each of those programs is mostly Python start-up (3–4 s on a quiet
 * machine, 12–15 s under two CPU hogs); made anew for every test file they
 * were most of the setup. Made in a scratch directory and renamed into
 * place, so test files starting at once never see half of one.
 */
function bootstrapped(): string {
  const version = spawnSync('dpkg-query', ['-W', '-f=${Version}', 'keystone'], { encoding: 'utf8' }).stdout.trim() || 'unknown';
  const template = join(tmpdir(), `volstate-keystone-template-${version.replace(/[^\w.-]/g, '_')}-1`);
  if (existsSync(join(template, 'ready'))) return template;
  const work = mkdtempSync(join(tmpdir(), 'volstate-keystone-making-'));
  const conf = join(work, 'keystone.conf');
  writeFileSync(conf, configFor(work, 3600));
  const manage = (...args: string[]) => run('keystone-manage', ['--config-file', conf, ...args]);
  manage('db_sync');
  manage('fernet_setup', '--keystone-user', 'root', '--keystone-group', 'root');
  manage('credential_setup', '--keystone-user', 'root', '--keystone-group', 'root');
  // The endpoints' address is set for each copy (its own port).
  const placeholder = 'http://127.0.0.1:1/v3/';
  manage(
    'bootstrap',
    '--bootstrap-password',
    ADMIN_PASSWORD,
    '--bootstrap-public-url',
    placeholder,
    '--bootstrap-internal-url',
    placeholder,
    '--bootstrap-admin-url',
    placeholder,
    '--bootstrap-region-id',
    'RegionOne',
  );
  run('/usr/bin/python3', [
    '-c',
    `import sqlite3; sqlite3.connect(${JSON.stringify(join(work, 'keystone.db'))}).execute('pragma journal_mode=wal')`,
  ]);
  rmSync(conf);
  rmSync(join(work, 'keystone.log'), { force: true });
  writeFileSync(join(work, 'ready'), version);
  try {
    renameSync(work, template);
  } catch {
    rmSync(work, { recursive: true, force: true }); // another test file made it meanwhile
  }
  return template;
}

export async function startKeystone(opts: KeystoneOptions = {}): Promise<Keystone> {
  ensureDebianPackages(KEYSTONE_PACKAGES);
  const dir = mkdtempSync(join(tmpdir(), 'volstate-keystone-'));
  const port = await freePort();
  const url = `http://127.0.0.1:${port}/v3`;
  const adminPassword = ADMIN_PASSWORD;
  cpSync(bootstrapped(), dir, { recursive: true });
  const conf = join(dir, 'keystone.conf');
  writeFileSync(conf, configFor(dir, opts.tokenLifetime ?? 3600));
  // This copy's own address in its catalogue (what the bootstrap registered for the template).
  run('/usr/bin/python3', [
    '-c',
    `import sqlite3; c = sqlite3.connect(${JSON.stringify(join(dir, 'keystone.db'))}); c.execute('UPDATE endpoint SET url = ?', (${JSON.stringify(`${url}/`)},)); c.commit()`,
  ]);

  let output = '';
  const proc: ChildProcess = spawn(
    'uwsgi_python3',
    [
      '--http-socket',
      `127.0.0.1:${port}`,
      '--wsgi-file',
      '/usr/bin/keystone-wsgi-public',
      '--processes',
      '1',
      '--threads',
      '1',
      '--master',
      '--die-on-term',
      '--add-header',
      'Connection: close',
      '--need-app',
    ],
    { env: { ...process.env, OS_KEYSTONE_CONFIG_FILES: conf }, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  proc.stdout!.on('data', (b: Buffer) => (output += b.toString()));
  proc.stderr!.on('data', (b: Buffer) => (output += b.toString()));
  const exited = new Promise<void>((r) => proc.on('exit', () => r()));
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    proc.kill('SIGTERM');
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };

  // Ready when it answers; it exits (and says why) if it cannot start.
  await until(
    async () =>
      proc.exitCode !== null ||
      (await fetch(url).then(
        (r) => r.ok,
        () => false,
      )),
    110_000,
    "Keystone's first answer",
  );
  if (proc.exitCode !== null) throw new Error(`Keystone's uwsgi exited (${proc.exitCode}):\n${output.slice(-3000)}`);

  const token = async (user: string, password: string, projectId: string) => {
    const res = await fetch(`${url}/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: user, domain: { id: 'default' }, password } } },
          scope: { project: { id: projectId } },
        },
      }),
    });
    if (res.status !== 201) throw new Error(`token for ${user}: ${res.status} ${await res.text()}`);
    return { token: res.headers.get('x-subject-token')!, body: await res.json() };
  };
  let admin: { token: string; expiresAt: number } | undefined;
  const adminToken = async () => {
    // Renewed before it expires (a test may run Keystone with short-lived tokens).
    if (admin && admin.expiresAt - 5000 > Date.now()) return admin.token;
    const res = await fetch(`${url}/auth/tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        auth: {
          identity: { methods: ['password'], password: { user: { name: 'admin', domain: { id: 'default' }, password: adminPassword } } },
          scope: { project: { name: 'admin', domain: { id: 'default' } } },
        },
      }),
    });
    if (res.status !== 201) throw new Error(`admin token: ${res.status} ${await res.text()}`);
    const body = (await res.json()) as { token: { expires_at: string } };
    admin = { token: res.headers.get('x-subject-token')!, expiresAt: Date.parse(body.token.expires_at) };
    return admin.token;
  };
  const api = async (method: string, path: string, body?: unknown, as?: string) => {
    const res = await fetch(`${url}${path}`, {
      method,
      headers: { 'content-type': 'application/json', 'x-auth-token': as ?? (await adminToken()) },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    if (!res.ok) throw new Error(`Keystone ${method} ${path}: ${res.status} ${text}`);
    return text ? JSON.parse(text) : null;
  };
  const roles = new Map<string, string>();
  const role = async (name: string) => {
    if (!roles.has(name)) {
      const found = (await api('GET', `/roles?name=${encodeURIComponent(name)}`)).roles[0];
      roles.set(name, found ? found.id : (await api('POST', '/roles', { role: { name } })).role.id);
    }
    return roles.get(name)!;
  };
  return {
    url,
    adminPassword,
    adminToken,
    token,
    api,
    role,
    async createProject(name) {
      return (await api('POST', '/projects', { project: { name, domain_id: 'default' } })).project.id;
    },
    async createUser(name, password, projectId, userRoles) {
      const id = (await api('POST', '/users', { user: { name, password, domain_id: 'default', default_project_id: projectId } })).user.id;
      for (const r of userRoles) await api('PUT', `/projects/${projectId}/users/${id}/roles/${await role(r)}`);
      return id;
    },
    stop,
    logs: () => output,
  };
}
