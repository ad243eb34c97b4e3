/**
 * What volstate does not implement says so, in Cinder's fault shape: each
 * such route is 404 and each such action 400, with a message naming the
 * feature, never a bare "could not be found" that reads like a wrong URL.
 */
import { describe, expect, it } from 'vitest';
import {
  GROUP_ACTIONS_NOT_IMPLEMENTED,
  ROUTES_NOT_IMPLEMENTED,
  SNAPSHOT_ACTIONS_NOT_IMPLEMENTED,
  VOLUME_ACTIONS_NOT_IMPLEMENTED,
} from '../../src/api/not-implemented.ts';
import { availableVolume, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp();
const ID = '00000000-0000-4000-8000-0000000000aa';

describe('what volstate does not implement', () => {
  it('every such route answers 404 naming the feature', async () => {
    for (const [route, what] of Object.entries(ROUTES_NOT_IMPLEMENTED)) {
      const [method, url] = route.split(' ') as [string, string];
      const res = await t.request(method, `/v3${url.replace(/:\w+/g, 'x')}`, method === 'GET' ? undefined : {});
      expect(res.status, route).toBe(404);
      expect(res.body.itemNotFound.message, route).toBe(`volstate does not implement ${what}: see "Not implemented" in docs/api.md.`);
    }
  });

  it('every such action answers 400 naming the feature and the action', async () => {
    const volume = await availableVolume(t);
    const snap = await t.request('POST', '/v3/snapshots', { snapshot: { volume_id: volume } });
    await waitStatus(t, 'snapshots', snap.body.snapshot.id, 'available');
    const cases: [string, Readonly<Record<string, string>>][] = [
      [`/v3/volumes/${volume}/action`, VOLUME_ACTIONS_NOT_IMPLEMENTED],
      [`/v3/snapshots/${snap.body.snapshot.id}/action`, SNAPSHOT_ACTIONS_NOT_IMPLEMENTED],
      [`/v3/groups/${ID}/action`, GROUP_ACTIONS_NOT_IMPLEMENTED],
    ];
    for (const [path, table] of cases) {
      for (const [action, what] of Object.entries(table)) {
        const res = await t.request('POST', path, { [action]: {} });
        expect(res.status, action).toBe(400);
        expect(res.body.badRequest.message, action).toContain(`volstate does not implement ${what} (${action})`);
      }
    }
    // An action nobody has is still Cinder's NoSuchAction.
    expect((await t.request('POST', `/v3/volumes/${volume}/action`, { 'os-nonsense': {} })).body.badRequest.message).toMatch(
      /no such action/,
    );
  });
});
