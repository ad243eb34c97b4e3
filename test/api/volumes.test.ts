/**
 * The volume API through `inject`: discovery, microversions, the create →
 * available → extend → delete cycle, lists, updates, refusals, and bad
 * input (always a 4xx with a Cinder-shaped body, never a 500, nothing
 * changed).
 */
import { describe, expect, it } from 'vitest';
import { availableVolume, eventually, PROJECT, useApp, waitStatus } from '../helpers/app.ts';

const t = useApp();

describe('discovery and microversions', () => {
  it('serves the version document at /, /v3 and /v3/ without auth', async () => {
    for (const [path, status] of [
      ['/', 300],
      ['/v3', 200],
      ['/v3/', 200],
    ] as const) {
      const res = await t.request('GET', path, undefined, { 'x-auth-token': '', 'openstack-api-version': '' });
      expect(res.status, path).toBe(status);
      expect(res.body.versions[0]).toMatchObject({ id: 'v3.0', version: '3.70', min_version: '3.0', status: 'CURRENT' });
    }
  });

  it('negotiates the version header and echoes it', async () => {
    const cases: [string | undefined, number, string | undefined][] = [
      [undefined, 200, 'volume 3.0'],
      ['volume 3.27', 200, 'volume 3.27'],
      ['volume latest', 200, 'volume 3.70'],
      ['volume 3.99', 406, undefined],
      ['volume 2.0', 406, undefined],
      ['compute 2.1', 400, undefined],
      ['volume three', 400, undefined],
    ];
    for (const [header, status, echo] of cases) {
      const res = await t.request(
        'GET',
        '/v3/volumes',
        undefined,
        header === undefined ? { 'openstack-api-version': '' } : { 'openstack-api-version': header },
      );
      expect(res.status, header).toBe(status);
      if (echo) {
        expect(res.headers['openstack-api-version']).toBe(echo);
        expect(res.headers.vary).toBe('OpenStack-API-Version');
      }
    }
    const bad = await t.request('GET', '/v3/volumes', undefined, { 'openstack-api-version': 'volume 3.99' });
    expect(bad.body).toEqual({
      computeFault: { code: 406, message: 'Version 3.99 is not supported by the API. Minimum is 3.0 and maximum is 3.70.' },
    });
  });

  it('sends request ids on every response, errors included', async () => {
    const res = await t.request('GET', '/v3/volumes/not-a-volume');
    expect(res.headers['x-compute-request-id']).toMatch(/^req-[0-9a-f-]{36}$/);
    expect(res.headers['x-openstack-request-id']).toBe(res.headers['x-compute-request-id']);
  });
});

describe('volume lifecycle', () => {
  it('creates (202, creating), becomes available, extends, and deletes', async () => {
    const adopted = t.worker!.adopted;
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1, name: 'v1', description: 'd', metadata: { k: 'v' } } });
    expect(created.status).toBe(202);
    expect(created.body.volume).toMatchObject({
      status: 'creating',
      size: 1,
      name: 'v1',
      description: 'd',
      metadata: { k: 'v' },
      bootable: 'false',
      attachments: [],
    });
    expect(created.body.volume).not.toHaveProperty('os-vol-tenant-attr:tenant_id');
    const id = created.body.volume.id as string;

    const available = await waitStatus(t, 'volumes', id, 'available');
    expect(available).toMatchObject({ id, size: 1, 'os-vol-tenant-attr:tenant_id': PROJECT });

    const extend = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } });
    expect(extend.status).toBe(202);
    expect(extend.body).toBeUndefined();
    await eventually(async () => {
      const v = (await t.request('GET', `/v3/volumes/${id}`)).body.volume;
      return v.status === 'available' && v.size === 2 ? v : undefined;
    });

    expect((await t.request('DELETE', `/v3/volumes/${id}`)).status).toBe(202);
    await waitStatus(t, 'volumes', id, 'gone');

    const history = await t.db.sql`SELECT event, to_state FROM state_transitions WHERE resource_id = ${id} ORDER BY version`;
    expect(history.map((h) => h.event)).toEqual([
      'CREATE',
      'SCHEDULE',
      'SCHEDULED',
      'BACKEND_CREATED',
      'EXTEND',
      'EXTENDED',
      'DELETE',
      'DELETED',
    ]);
    expect(t.backend.volumes.has(id)).toBe(false);
    // Each request's statement made the node's own worker the row's owner: three steps, none claimed (db/cas.ts KEEPER).
    expect(t.worker!.adopted - adopted).toBe(3);
  });

  it('accepts the size as a digit string and the project in the URL', async () => {
    const res = await t.request('POST', `/v3/${PROJECT}/volumes`, { volume: { size: '2' } });
    expect(res.status).toBe(202);
    expect(res.body.volume.size).toBe(2);
    expect(res.body.volume.links[0].href).toContain(`/v3/${PROJECT}/volumes/`);
    const viaToken = await t.request('GET', `/v3/volumes/${res.body.volume.id}`);
    expect(viaToken.status).toBe(200);
  });

  it('answers 404 itemNotFound for a missing id and for a non-UUID', async () => {
    const missing = '7b2e4f7c-0000-4000-8000-000000000000';
    expect(await t.request('GET', `/v3/volumes/${missing}`)).toMatchObject({
      status: 404,
      body: { itemNotFound: { code: 404, message: `Volume ${missing} could not be found.` } },
    });
    expect(await t.request('GET', '/v3/volumes/my-volume-name')).toMatchObject({ status: 404, body: { itemNotFound: { code: 404 } } });
    expect((await t.request('DELETE', '/v3/volumes/nope')).status).toBe(404);
  });

  it('updates name, description and metadata', async () => {
    const id = await availableVolume(t);
    const res = await t.request('PUT', `/v3/volumes/${id}`, { volume: { name: 'renamed', metadata: { a: '1' } } });
    expect(res.status).toBe(200);
    expect(res.body.volume).toMatchObject({ name: 'renamed', metadata: { a: '1' } });
    expect(res.body.volume.updated_at).not.toBeNull();
  });

  it('records the history, with who did what', async () => {
    const id = await availableVolume(t);
    const res = await t.request('GET', `/v3/volumes/${id}/transitions`);
    expect(res.status).toBe(200);
    expect(res.body.transitions[0]).toMatchObject({
      version: 1,
      from: null,
      event: 'CREATE',
      to: 'creating.db',
      actor: `admin:${PROJECT}`,
    });
    expect(res.body.transitions[0].request_id).toMatch(/^req-/);
    expect(res.body.transitions.at(-1)).toMatchObject({ to: 'available', actor: expect.stringMatching(/^worker:/) });
  });
});

describe('refusals', () => {
  it('refuses a shrinking or same-size extend as 400 Invalid volume, naming state and allowed events', async () => {
    const id = await availableVolume(t, 2);
    for (const new_size of [2, 1]) {
      const res = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size } });
      expect(res.status).toBe(400);
      expect(res.body.badRequest).toMatchObject({
        code: 400,
        type: 'InvalidVolume',
        status: 'available',
        state: 'available',
        event: 'EXTEND',
        allowed: [
          'DELETE',
          'DELETE_CASCADE',
          'FORCE_DELETE',
          'FORCE_DELETE_CASCADE',
          'EXTEND',
          'RESET_STATUS',
          'REVERT',
          'RETYPE',
          'TRANSFER_OFFER',
        ],
      });
      expect(res.body.badRequest.message).toMatch(/^Invalid volume: cannot extend volume .*larger than the current size/);
    }
    const get = await t.request('GET', `/v3/volumes/${id}`);
    expect(get.body.volume).toMatchObject({ size: 2, status: 'available' });
    expect(get.headers).toMatchObject({ etag: '"4"', 'volstate-state': 'available' });
    // Cinder's fields only: Tempest's schemas forbid any other.
    expect(Object.keys(get.body.volume).filter((k) => k.startsWith('volstate'))).toEqual([]);
  });

  it('refuses resetting to a status Cinder does not know, and to deleted', async () => {
    const id = await availableVolume(t);
    const bogus = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status: 'bogus' } });
    expect(bogus.status).toBe(400);
    expect(bogus.body.badRequest.message).toMatch(/Volume status: bogus is invalid, valid statuses are: \('creating', 'available'/);
    const deleted = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status: 'deleted' } });
    expect(deleted.status).toBe(400);
    expect(deleted.body.badRequest.message).toMatch(/Volume status: deleted is invalid/);
    const ok = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status: 'error' } });
    expect(ok.status).toBe(202);
    await waitStatus(t, 'volumes', id, 'error');
    // From error: a plain extend is not allowed (400), a force delete is.
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 3 } })).status).toBe(400);
    expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-force_delete': null })).status).toBe(202);
    await waitStatus(t, 'volumes', id, 'gone');
  });

  it('parks a reset to a status of work: no worker takes it, and only a reset or a force delete leaves it', async () => {
    for (const status of ['creating', 'extending', 'deleting', 'maintenance']) {
      const id = await availableVolume(t);
      expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status } })).status).toBe(202);
      // A worker that has looked for work since finds none here.
      await t.worker!.idle();
      const get = await t.request('GET', `/v3/volumes/${id}`);
      expect(get.body.volume.status).toBe(status);
      expect(get.headers['volstate-state']).toBe(`${status}.parked`);
      expect((await t.db.sql`SELECT owner FROM resource_states WHERE resource_id = ${id}`)[0]!.owner).toBeNull();
      // Anything else is refused as invalid (nothing is in flight), naming the state.
      const extend = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 9 } });
      expect(extend.status).toBe(400);
      expect(extend.body.badRequest).toMatchObject({ status, state: `${status}.parked` });
      expect((await t.request('DELETE', `/v3/volumes/${id}`)).status).toBe(400);
      expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status: 'available' } })).status).toBe(202);
      await waitStatus(t, 'volumes', id, 'available');
      expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-reset_status': { status } })).status).toBe(202);
      expect((await t.request('POST', `/v3/volumes/${id}/action`, { 'os-force_delete': {} })).status).toBe(202);
      await waitStatus(t, 'volumes', id, 'gone');
    }
  });

  it('honours If-Match on state changes (412 when stale)', async () => {
    const id = await availableVolume(t);
    const get = await t.request('GET', `/v3/volumes/${id}`);
    const etag = get.headers.etag as string;
    expect(etag).toMatch(/^"\d+"$/);
    const stale = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }, { 'if-match': '"1"' });
    expect(stale.status).toBe(412);
    const fresh = await t.request('POST', `/v3/volumes/${id}/action`, { 'os-extend': { new_size: 2 } }, { 'if-match': etag });
    expect(fresh.status).toBe(202);
  });

  it('refuses an unknown action before looking the volume up', async () => {
    const res = await t.request('POST', '/v3/volumes/00000000-0000-4000-8000-000000000000/action', { 'os-bogus': null });
    expect(res.status).toBe(400);
    expect(res.body.badRequest.message).toBe(
      'There is no such action: os-bogus. Verify the request body and Content-Type header and try again.',
    );
  });
});

describe('bad input: 400 with a message, never a 500, nothing created', () => {
  const cases: [string, unknown, RegExp, Record<string, string>?][] = [
    ['size 0', { volume: { size: 0 } }, /^Invalid input for field\/attribute size\. Value: 0\. 0 is less than the minimum of 1\./],
    ['size abc', { volume: { size: 'abc' } }, /^Invalid input for field\/attribute size\. Value: abc\. 'abc' does not match/],
    ['size 1.5', { volume: { size: 1.5 } }, /not an integer/],
    ['size missing', { volume: { name: 'x' } }, /size is required/],
    ['size true', { volume: { size: true } }, /is not of type 'integer', 'string'/],
    ['no wrapper', { size: 1 }, /missing required element 'volume'/],
    ['wrapper not an object', { volume: 3 }, /field\/attribute volume/],
    ['body an array', [1], /Malformed request body/],
    ['metadata values', { volume: { size: 1, metadata: { k: 1 } } }, /the value of 'k' is not a string/],
    ['metadata a list', { volume: { size: 1, metadata: ['a'] } }, /is not of type 'object'/],
    ['name too long', { volume: { size: 1, name: 'x'.repeat(256) } }, /longer than 255/],
    ['name a number', { volume: { size: 1, name: 5 } }, /field\/attribute/],
    ['unknown key at 3.53', { volume: { size: 1, bogus: 1 } }, /Additional properties are not allowed \('bogus' was unexpected\)/],
    ['an image', { volume: { size: 1, imageRef: 'abc' } }, /not supported by volstate/],
    ['bad JSON', '{"volume": ', /^Malformed request body/],
  ];
  for (const [name, body, message, headers] of cases) {
    it(name, async () => {
      const before = await t.db.sql`SELECT count(*)::int AS n FROM volumes`;
      const res = await t.request('POST', '/v3/volumes', body, headers);
      expect(res.status).toBe(400);
      expect(Object.keys(res.body)).toEqual(['badRequest']);
      expect(res.body.badRequest.code).toBe(400);
      expect(res.body.badRequest.message).toMatch(message);
      const after = await t.db.sql`SELECT count(*)::int AS n FROM volumes`;
      expect(after[0]!.n).toBe(before[0]!.n);
    });
  }

  it('accepts unknown keys below 3.53, as Cinder does', async () => {
    const res = await t.request('POST', '/v3/volumes', { volume: { size: 1, bogus: 1 } }, { 'openstack-api-version': 'volume 3.52' });
    expect(res.status).toBe(202);
  });

  it('refuses bad action arguments with 400', async () => {
    const id = await availableVolume(t);
    for (const body of [
      { 'os-extend': { new_size: 'big' } },
      { 'os-extend': {} },
      { 'os-extend': 5 },
      {},
      { 'os-extend': { new_size: 2 }, 'os-force_delete': null },
    ]) {
      const res = await t.request('POST', `/v3/volumes/${id}/action`, body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body).toHaveProperty('badRequest');
    }
    expect((await t.request('GET', `/v3/volumes/${id}`)).body.volume).toMatchObject({ status: 'available', size: 1 });
  });

  it('refuses bad list parameters with 400', async () => {
    for (const q of ['limit=-1', 'limit=x', 'sort=bogus:asc', 'sort=size:sideways', 'all_tenants=maybe']) {
      const res = await t.request('GET', `/v3/volumes/detail?${q}`);
      expect(res.status, q).toBe(400);
    }
  });

  it('answers as Cinder where Tempest checks: an unknown marker or volume type is 404, an unknown status an empty list', async () => {
    const marker = await t.request('GET', '/v3/volumes/detail?marker=00000000-0000-4000-8000-000000000000');
    expect(marker.status).toBe(404);
    expect(marker.body.itemNotFound.message).toMatch(/^Marker 00000000-0000-4000-8000-000000000000 could not be found/);
    const type = await t.request('POST', '/v3/volumes', { volume: { size: 1, volume_type: 'gold' } });
    expect(type.status).toBe(404);
    expect(type.body.itemNotFound.message).toMatch(/^Volume type gold could not be found/);
    for (const status of ['null', 'bogus'])
      expect((await t.request('GET', `/v3/volumes/detail?status=${status}`)).body).toEqual({ volumes: [] });
    expect((await t.request('GET', '/v3/volumes/')).status).toBe(404);
  });
});

describe('lists', () => {
  it('filters, sorts and pages through every volume exactly once', async () => {
    const project = 'feedfacefeedfacefeedfacefeedface';
    const headers = { 'x-auth-token': `admin:${project}` };
    // Another project's volumes with the same sizes and names: paging by a
    // non-unique key must never bring them in.
    for (let i = 0; i < 4; i++) {
      await t.request(
        'POST',
        '/v3/volumes',
        { volume: { size: (i % 3) + 1, name: 'odd' } },
        { 'x-auth-token': 'admin:0ther0ther0ther0ther0ther0ther00' },
      );
    }
    const ids: string[] = [];
    for (let i = 0; i < 7; i++) {
      const res = await t.request('POST', '/v3/volumes', { volume: { size: (i % 3) + 1, name: i % 2 ? 'odd' : 'even' } }, headers);
      ids.push(res.body.volume.id);
    }
    await Promise.all(ids.map((id) => waitStatus(t, 'volumes', id, 'available')));

    const all = await t.request('GET', '/v3/volumes/detail', undefined, headers);
    expect(all.body.volumes.map((v: { id: string }) => v.id).sort()).toEqual([...ids].sort());
    // Newest first by default.
    expect(all.body.volumes[0].id).toBe(ids.at(-1));

    const odd = await t.request('GET', '/v3/volumes/detail?name=odd', undefined, headers);
    expect(odd.body.volumes).toHaveLength(3);
    const available = await t.request('GET', '/v3/volumes/detail?status=available', undefined, headers);
    expect(available.body.volumes).toHaveLength(7);
    const creating = await t.request('GET', '/v3/volumes/detail?status=creating', undefined, headers);
    expect(creating.body.volumes).toHaveLength(0);

    const bySize = await t.request('GET', '/v3/volumes/detail?sort=size:asc,name:desc', undefined, headers);
    const sizes = bySize.body.volumes.map((v: { size: number }) => v.size);
    expect(sizes).toEqual([...sizes].sort((a, b) => a - b));

    for (const sort of ['', '&sort=size:asc', '&sort=name:asc,created_at:desc']) {
      const seen: string[] = [];
      let url: string | undefined = `/v3/volumes?limit=2${sort}`;
      while (url) {
        const page: { status: number; body: { volumes: { id: string }[]; volumes_links?: { href: string }[] } } = await t.request(
          'GET',
          url,
          undefined,
          headers,
        );
        expect(page.status, `${url}: ${JSON.stringify(page.body)}`).toBe(200);
        seen.push(...page.body.volumes.map((v) => v.id));
        const next = page.body.volumes_links?.[0]?.href;
        url = next ? next.slice(next.indexOf('/v3/')) : undefined;
      }
      expect(seen.sort(), sort).toEqual([...ids].sort());
    }

    const counted = await t.request('GET', '/v3/volumes?with_count=true&limit=1', undefined, {
      ...headers,
      'openstack-api-version': 'volume 3.45',
    });
    expect(counted.body.count).toBe(7);
    expect(counted.body.volumes[0]).toEqual({ id: expect.any(String), name: expect.any(String), links: expect.any(Array) });
  });

  it('shows another project only to all_tenants', async () => {
    const mine = await t.request('POST', '/v3/volumes', { volume: { size: 1 } }, { 'x-auth-token': 'admin:aaaa' });
    const other = await t.request('GET', '/v3/volumes', undefined, { 'x-auth-token': 'admin:bbbb' });
    expect(other.body.volumes.map((v: { id: string }) => v.id)).not.toContain(mine.body.volume.id);
    const everyone = await t.request('GET', '/v3/volumes?all_tenants=1', undefined, { 'x-auth-token': 'admin:bbbb' });
    expect(everyone.body.volumes.map((v: { id: string }) => v.id)).toContain(mine.body.volume.id);
    // With all_tenants, project_id names one project.
    const onlyB = await t.request('POST', '/v3/volumes', { volume: { size: 1 } }, { 'x-auth-token': 'admin:bbbb' });
    const ofA = await t.request('GET', '/v3/volumes?all_tenants=1&project_id=aaaa', undefined, { 'x-auth-token': 'admin:bbbb' });
    const idsOfA = ofA.body.volumes.map((v: { id: string }) => v.id);
    expect(idsOfA).toContain(mine.body.volume.id);
    expect(idsOfA).not.toContain(onlyB.body.volume.id);
  });

  it('filters inexactly with name~ and description~ (3.34), taking % and _ literally', async () => {
    const headers = { 'x-auth-token': 'admin:1nexact1nexact1nexact1nexact1nex' };
    const made = [];
    for (const [name, description] of [
      ['clone-of-a', 'first'],
      ['CLONE_b', '50% off'],
      ['other', 'nothing'],
    ]) {
      made.push((await t.request('POST', '/v3/volumes', { volume: { size: 1, name, description } }, headers)).body.volume.id);
    }
    const names = async (q: string) =>
      (await t.request('GET', `/v3/volumes/detail?${q}`, undefined, headers)).body.volumes.map((v: { name: string }) => v.name).sort();
    expect(await names('name~=clo')).toEqual(['CLONE_b', 'clone-of-a']);
    expect(await names('display_name~=E_B')).toEqual(['CLONE_b']);
    expect(await names('name~=_')).toEqual(['CLONE_b']);
    expect(await names(`description~=${encodeURIComponent('%')}`)).toEqual(['CLONE_b']);
    expect(await names('name~=zzz')).toEqual([]);
  });

  it('gives a full page a next link, as Cinder does, even when nothing follows', async () => {
    const headers = { 'x-auth-token': 'admin:fu11fu11fu11fu11fu11fu11fu11fu11' };
    for (let i = 0; i < 2; i++) await t.request('POST', '/v3/volumes', { volume: { size: 1 } }, headers);
    const full = await t.request('GET', '/v3/volumes?limit=2', undefined, headers);
    expect(full.body.volumes).toHaveLength(2);
    const next = full.body.volumes_links[0].href as string;
    const after = await t.request('GET', next.slice(next.indexOf('/v3/')), undefined, headers);
    expect(after.body).toEqual({ volumes: [] });
    expect((await t.request('GET', '/v3/volumes?limit=3', undefined, headers)).body.volumes_links).toBeUndefined();
  });
});

describe("a create's answer, with no worker running", () => {
  const idle = useApp({ worker: false });
  const ADMIN_ONLY = [
    'os-vol-host-attr:host',
    'os-vol-mig-status-attr:migstat',
    'os-vol-mig-status-attr:name_id',
    'os-vol-tenant-attr:tenant_id',
  ] as const;

  // The create makes its answer from the rows it wrote (db/resources.ts withState), not by reading
  // them back: it must show exactly what a read shows, whatever the create was given.
  it('is what GET shows right after: every field, for the default type, a named one, a multiattach type and metadata', async () => {
    const typed = await idle.request('POST', '/v3/types', {
      volume_type: { name: 'answer-multi', extra_specs: { multiattach: '<is> True', volume_backend_name: 'fake' } },
    });
    expect(typed.status).toBe(200);
    const bodies = [
      { size: 1 },
      { size: 2, name: 'n', description: 'd', metadata: { a: '1', b: '' } },
      { size: 3, volume_type: 'answer-multi', name: null },
      { size: 1, volume_type: typed.body.volume_type.id, multiattach: true },
    ];
    for (const volume of bodies) {
      const created = await idle.request('POST', '/v3/volumes', { volume }, { 'openstack-api-version': 'volume 3.60' });
      expect(created.status).toBe(202);
      const read = await idle.request('GET', `/v3/volumes/${created.body.volume.id}`, undefined, {
        'openstack-api-version': 'volume 3.60',
      });
      expect(read.status).toBe(200);
      // A create answers without the admin's attributes (Cinder's create view); everything else is the read's.
      const { [ADMIN_ONLY[0]]: _h, [ADMIN_ONLY[1]]: _m, [ADMIN_ONLY[2]]: _n, [ADMIN_ONLY[3]]: _t, ...shown } = read.body.volume;
      expect(Object.keys(read.body.volume)).toEqual(expect.arrayContaining([...ADMIN_ONLY]));
      expect(created.body.volume).toEqual(shown);
    }
  });
});
