/**
 * Auth mode `tokens`: an unknown token is 401; a project sees and changes
 * only its own resources (another project's id is 404, never 403); admin
 * actions need the admin role (403).
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, loadTokens } from '../../src/config.ts';
import { useApp, waitStatus } from '../helpers/app.ts';

const tokens = new Map([
  ['alice-token', { user: 'alice', project: 'aaaa', roles: ['member'] }],
  ['bob-token', { user: 'bob', project: 'bbbb', roles: ['member'] }],
  ['root-token', { user: 'root', project: 'ops', roles: ['admin'] }],
]);
const t = useApp({ auth: { mode: 'tokens', defaultProject: 'admin', tokens } });
const as = (token: string) => ({ 'x-auth-token': token });

async function aliceVolume() {
  const res = await t.request('POST', '/v3/volumes', { volume: { size: 1 } }, as('alice-token'));
  expect(res.status).toBe(202);
  await waitStatus(t, 'volumes', res.body.volume.id, 'available', 10_000, as('alice-token'));
  return res.body.volume.id as string;
}

describe('auth mode tokens', () => {
  it('refuses a missing or unknown token with 401', async () => {
    for (const headers of [as(''), as('nobody'), as('alice:aaaa')]) {
      const res = await t.request('GET', '/v3/volumes', undefined, headers);
      expect(res.status).toBe(401);
      expect(res.body.unauthorized.code).toBe(401);
    }
    // Discovery needs no token.
    expect((await t.request('GET', '/', undefined, as(''))).status).toBe(300);
  });

  it("hides another project's volumes: 404 by id, absent from lists", async () => {
    const id = await aliceVolume();
    expect((await t.request('GET', `/v3/volumes/${id}`, undefined, as('alice-token'))).status).toBe(200);
    const bob = await t.request('GET', `/v3/volumes/${id}`, undefined, as('bob-token'));
    expect(bob).toMatchObject({ status: 404, body: { itemNotFound: { message: `Volume ${id} could not be found.` } } });
    expect((await t.request('DELETE', `/v3/volumes/${id}`, undefined, as('bob-token'))).status).toBe(404);
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }, as('bob-token'))).status).toBe(404);
    expect((await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: id } }, as('bob-token'))).status).toBe(404);
    expect((await t.request('POST', '/v3/attachments', { attachment: { volume_uuid: id } }, as('bob-token'))).status).toBe(404);
    expect((await t.request('GET', '/v3/volumes', undefined, as('bob-token'))).body.volumes).toEqual([]);
    // A URL naming another project is 404 too.
    expect((await t.request('GET', '/v3/aaaa/volumes', undefined, as('bob-token'))).status).toBe(404);
    expect((await t.request('GET', '/v3/aaaa/volumes', undefined, as('alice-token'))).status).toBe(200);
  });

  it('keeps admin actions to the admin role (403 otherwise)', async () => {
    const id = await aliceVolume();
    for (const body of [{ 'os-reset_status': { status: 'error' } }, { 'os-force_delete': null }]) {
      const res = await t.request('POST', `/v3/volumes/${id}/action`, body, as('alice-token'));
      expect(res.status).toBe(403);
      expect(res.body.forbidden.message).toMatch(/^Policy doesn't allow .* to be performed\.$/);
    }
    // all_tenants is dropped for a non-admin, as Cinder does (name lookups send it): her own volumes only.
    const hers = await t.request('GET', '/v3/volumes?all_tenants=1', undefined, as('alice-token'));
    expect(hers.status).toBe(200);
    expect(hers.body.volumes.map((v: { id: string }) => v.id)).toContain(id);
    expect(
      (await t.request('GET', '/v3/volumes?all_tenants=1', undefined, as('bob-token'))).body.volumes.map((v: { id: string }) => v.id),
    ).not.toContain(id);
    expect(
      (
        await t.request('DELETE', `/v3/volumes/${id}?force=true`, undefined, {
          ...as('alice-token'),
          'openstack-api-version': 'volume 3.23',
        })
      ).status,
    ).toBe(403);

    const all = await t.request('GET', '/v3/volumes?all_tenants=1', undefined, as('root-token'));
    expect(all.body.volumes.map((v: { id: string }) => v.id)).toContain(id);
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status: 'error' } }, as('root-token'))).status).toBe(
      202,
    );
    expect((await t.request('GET', `/v3/volumes/${id}`, undefined, as('alice-token'))).body.volume.status).toBe('error');
  });
});

describe('the tokens file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'volstate-tokens-'));
  it('is read, and a bad one stops the server with a message naming it', () => {
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ tokens: [{ token: 't1', user: 'u', project: 'p', roles: ['admin'] }] }));
    expect(loadTokens(good).get('t1')).toEqual({ user: 'u', project: 'p', roles: ['admin'] });
    expect(loadConfig({ VOLSTATE_AUTH: 'tokens', VOLSTATE_TOKENS_FILE: good }).auth.mode).toBe('tokens');
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ tokens: [{ token: 't1' }] }));
    expect(() => loadTokens(bad)).toThrow(ConfigError);
    expect(() => loadTokens(bad)).toThrow(/tokens\[0\] needs token, user, project/);
    expect(() => loadConfig({ VOLSTATE_AUTH: 'tokens' })).toThrow(/needs VOLSTATE_TOKENS_FILE/);
    expect(() => loadConfig({ VOLSTATE_AUTH: 'kerberos' })).toThrow(/expected noauth, tokens or keystone/);
    expect(() => loadConfig({ VOLSTATE_AUTH: 'keystone' })).toThrow(/VOLSTATE_AUTH=keystone needs VOLSTATE_KEYSTONE_URL/);
  });
});
