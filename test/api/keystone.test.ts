/**
 * Auth mode `keystone` against a real Keystone (Debian's package on
 * loopback, test/helpers/keystone.ts): tokens are validated as
 * keystonemiddleware does, cached until they expire (bounded), revocations
 * honoured within the cache's lifetime, and roles as Cinder's default
 * policies: `reader` reads, `member` changes its project's resources,
 * `admin` does admin actions. A project in the URL that is not the token's
 * is 400 "Malformed request url", as Cinder answers it.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { KeystoneAuth } from '../../src/auth/keystone.ts';
import { freePort } from '../../db/servers/embedded.ts';
import { ApiError } from '../../src/errors.ts';
import { useApp, waitStatus } from '../helpers/app.ts';
import { KEYSTONE_START_MS, SERVICE_USER, serviceAuthOptions, startKeystone, type Keystone } from '../helpers/keystone.ts';
import { until } from '../helpers/wait.ts';

/**
 * Tokens live this long in the expiry test's own Keystone. The other tests'
 * Keystone keeps the default (an hour): with 20 s for every test, a loaded
 * machine (npm run test:stress) had a test outlive its tokens, and a valid
 * member's create answered 401.
 */
const TOKEN_LIFETIME_S = 10; // 20 until 2026-12-05: all but two Keystone calls of this test come after it expires

let keystone: Keystone;
const options = serviceAuthOptions();
const auth = new KeystoneAuth(options);
const users: Record<'reader' | 'member' | 'admin' | 'other', { name: string; project: string }> = {} as never;
let projectP = '';
let projectQ = '';

beforeAll(async () => {
  keystone = await startKeystone();
  options.url = keystone.url;
  const service = await keystone.createProject(SERVICE_USER.project);
  await keystone.createUser(SERVICE_USER.name, SERVICE_USER.password, service, ['service']);
  projectP = await keystone.createProject('p');
  projectQ = await keystone.createProject('q');
  for (const [role, project] of [
    ['reader', projectP],
    ['member', projectP],
    ['admin', projectP],
    ['other', projectQ],
  ] as const) {
    await keystone.createUser(`user-${role}`, 'pw', project, [role === 'other' ? 'member' : role]);
    users[role] = { name: `user-${role}`, project };
  }
}, KEYSTONE_START_MS);
afterAll(async () => keystone?.stop());

const t = useApp({ auth: { mode: 'keystone', defaultProject: 'admin', keystone: auth } });

async function tokenOf(role: keyof typeof users): Promise<string> {
  const u = users[role];
  return (await keystone.token(u.name, 'pw', u.project)).token;
}
const as = (token: string) => ({ 'x-auth-token': token });

describe('auth mode keystone, against a real Keystone', () => {
  it('takes a valid token, refuses a missing or unknown one with 401', async () => {
    const member = await tokenOf('member');
    expect((await t.request('GET', `/v3/${projectP}/volumes`, undefined, as(member))).status).toBe(200);
    for (const headers of [{}, as('nonsense'), as(`${member.slice(0, -4)}AAAA`)]) {
      const res = await t.request('GET', `/v3/${projectP}/volumes`, undefined, headers);
      expect(res.status).toBe(401);
      expect(res.body.unauthorized.message).toMatch(/^Authentication required: /);
    }
  });

  it("gives each role what Cinder's default policies give it", async () => {
    const [reader, member, admin] = await Promise.all([tokenOf('reader'), tokenOf('member'), tokenOf('admin')]);
    const P = `/v3/${projectP}`;
    const created = await t.request('POST', `${P}/volumes`, { volume: { size: 1 } }, as(member));
    expect(created.status).toBe(202);
    const id = created.body.volume.id as string;
    await waitStatus(t, 'volumes', `${id}`, 'available', 10_000, as(member));

    // reader: reads only
    const listed = await t.request('GET', `${P}/volumes/detail`, undefined, as(reader));
    expect(listed.status, JSON.stringify(listed.body)).toBe(200);
    expect(listed.body.volumes.map((v: any) => v.id)).toContain(id);
    expect((await t.request('GET', `${P}/volumes/${id}`, undefined, as(reader))).status).toBe(200);
    expect((await t.request('GET', `${P}/volumes/${id}/metadata`, undefined, as(reader))).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', `${P}/volumes`, { volume: { size: 1 } }],
      ['PUT', `${P}/volumes/${id}`, { volume: { name: 'x' } }],
      ['POST', `${P}/volumes/${id}/metadata`, { metadata: { a: 'b' } }],
      ['POST', `${P}/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }],
      ['DELETE', `${P}/volumes/${id}`, undefined],
    ] as const) {
      const res = await t.request(method, path, body, as(reader));
      expect(res.status, `${method} ${path} as reader`).toBe(403);
      expect(res.body.forbidden.message).toMatch(/by a reader \(it needs the member role\)/);
    }

    // member: changes its project's resources, no admin actions
    expect((await t.request('PUT', `${P}/volumes/${id}`, { volume: { name: 'renamed' } }, as(member))).status).toBe(200);
    expect((await t.request('POST', `${P}/volumes/${id}/metadata`, { metadata: { a: 'b' } }, as(member))).status).toBe(200);
    for (const [method, path, body] of [
      ['POST', `${P}/volumes/${id}/action`, { 'os-reset_status': { status: 'error' } }],
      ['POST', `${P}/volumes/${id}/action`, { 'os-force_delete': {} }],
      ['GET', `${P}/os-services`, undefined],
      ['GET', `${P}/scheduler-stats/get_pools`, undefined],
    ] as const) {
      expect((await t.request(method, path, body, as(member))).status, `${method} ${path} as member`).toBe(403);
    }

    // admin: admin actions, and every project's resources
    expect((await t.request('GET', `${P}/os-services`, undefined, as(admin))).status).toBe(200);
    expect((await t.request('POST', `${P}/volumes/${id}/action`, { 'os-reset_status': { status: 'error' } }, as(admin))).status).toBe(202);
    expect((await t.request('POST', `${P}/volumes/${id}/action`, { 'os-force_delete': {} }, as(admin))).status).toBe(202);
    await waitStatus(t, 'volumes', id, 'gone', 10_000, as(admin));
  });

  it("refuses a URL naming another project than the token's (400, as Cinder), and hides other projects' volumes (404)", async () => {
    const [member, other] = await Promise.all([tokenOf('member'), tokenOf('other')]);
    const created = await t.request('POST', `/v3/${projectP}/volumes`, { volume: { size: 1 } }, as(member));
    const id = created.body.volume.id as string;
    const wrong = await t.request('GET', `/v3/${projectP}/volumes`, undefined, as(other));
    expect(wrong.status).toBe(400);
    expect(wrong.body.badRequest.message).toMatch(/^Malformed request url/);
    expect((await t.request('GET', `/v3/${projectQ}/volumes/${id}`, undefined, as(other))).status).toBe(404);
    expect((await t.request('GET', `/v3/${projectQ}/volumes`, undefined, as(other))).body.volumes).toEqual([]);
  });

  it('caches a valid token (one Keystone round trip), and honours a revocation once the cache time is over', async () => {
    const member = await tokenOf('member');
    const before = auth.validations;
    for (let i = 0; i < 5; i++) expect((await t.request('GET', `/v3/${projectP}/volumes`, undefined, as(member))).status).toBe(200);
    expect(auth.validations - before).toBe(1);
    const res = await fetch(`${keystone.url}/auth/tokens`, {
      method: 'DELETE',
      headers: { 'x-auth-token': await keystone.adminToken(), 'x-subject-token': member },
    });
    expect(res.status).toBe(204);
    // Within the cache time the revoked token still works (keystonemiddleware's trade too)...
    expect(await auth.identify(member)).not.toBeNull();
    // ...and once it is over, Keystone is asked again and says no.
    expect(await auth.identify(member, Date.now() + options.cacheSeconds * 1000 + 1)).toBeNull();
    expect((await t.request('GET', `/v3/${projectP}/volumes`, undefined, as(member))).status).toBe(401);
  });

  it(
    'refuses an expired token, whatever the cache time',
    async () => {
      // A Keystone whose tokens live TOKEN_LIFETIME_S, and the app's validation pointed at it.
      const brief = await startKeystone({ tokenLifetime: TOKEN_LIFETIME_S });
      try {
        const service = await brief.createProject(SERVICE_USER.project);
        await brief.createUser(SERVICE_USER.name, SERVICE_USER.password, service, ['service']);
        const project = await brief.createProject('p');
        await brief.createUser('user-member', 'pw', project, ['member']);
        const briefAuth = new KeystoneAuth({ ...options, url: brief.url });
        const member = (await brief.token('user-member', 'pw', project)).token;
        const identity = await briefAuth.identify(member);
        expect(identity?.projectId).toBe(project);
        // Wait until Keystone itself no longer knows the token (an event, not a margin).
        await until(
          async () =>
            (await fetch(`${brief.url}/auth/tokens`, { headers: { 'x-auth-token': await brief.adminToken(), 'x-subject-token': member } }))
              .status === 404,
          (TOKEN_LIFETIME_S + 60) * 1000,
          'Keystone to forget the token',
        );
        // Whatever the cache time: the cached identity expires with the token.
        expect(await briefAuth.identify(member)).toBeNull();
      } finally {
        await brief.stop();
      }
    },
    KEYSTONE_START_MS + (TOKEN_LIFETIME_S + 60) * 1000,
  );

  it('keeps the cache bounded: the least recently used token leaves first', async () => {
    const small = new KeystoneAuth({ ...options, maxEntries: 2 });
    const [a, b, c] = await Promise.all([tokenOf('reader'), tokenOf('member'), tokenOf('admin')]);
    for (const token of [a, b, a, c]) expect(await small.identify(token)).not.toBeNull();
    expect(small.cached).toBe(2);
    const n = small.validations;
    await small.identify(a); // kept: used after b
    expect(small.validations).toBe(n);
    await small.identify(b); // evicted by c: asked again
    expect(small.validations).toBe(n + 1);
  });

  it('answers 503 naming Keystone when it cannot be reached', async () => {
    const port = await freePort();
    const down = new KeystoneAuth({ ...options, url: `http://127.0.0.1:${port}/v3`, timeoutMs: 2000 });
    const err = await down.identify('any').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).code).toBe('AuthUnavailable');
    expect((err as ApiError).message).toMatch(/Keystone at http:\/\/127\.0\.0\.1:\d+\/v3 did not answer/);
  });
});
