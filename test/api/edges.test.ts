/**
 * The classes of bad input that once answered 500 or left the fault shape
 * (issue 7), one request each: every one is a 4xx in Cinder's fault shape
 * with a message that names what was wrong, and changes nothing. The
 * generative test (generative.test.ts) looks for new ones; these keep the
 * known ones fixed whatever it draws.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { faultName } from '../../src/errors.ts';
import { availableVolume, useApp, type Reply } from '../helpers/app.ts';

function fault(res: Reply, status: number): string {
  expect(res.status, JSON.stringify(res.body)).toBe(status);
  const body = res.body as Record<string, { code: number; message: string }>;
  expect(Object.keys(body)).toEqual([faultName(status)]);
  expect(body[faultName(status)]!.code).toBe(status);
  return body[faultName(status)]!.message;
}

describe('bad input is a clean 4xx', () => {
  const t = useApp();
  let V: string;
  beforeAll(async () => {
    V = await availableVolume(t);
  });

  const lists = ['/v3/volumes', '/v3/volumes/detail', '/v3/snapshots', '/v3/snapshots/detail', '/v3/attachments', '/v3/attachments/detail'];

  it('1. a marker that is not a UUID, or a UUID in braces, on every list: it names nothing (404, as Cinder)', async () => {
    for (const path of lists) {
      expect(fault(await t.request('GET', `${path}?marker=notauuid`), 404)).toMatch(/Marker notauuid could not be found/);
      fault(await t.request('GET', `${path}?marker=%7B${V}%7D`), 404);
    }
  });

  it('2. limit=0 is an empty page, with no next link', async () => {
    for (const path of lists) {
      const res = await t.request('GET', `${path}?limit=0`);
      expect(res.status, path).toBe(200);
      const key = path.split('/')[2]!;
      expect(res.body[key]).toEqual([]);
      expect(res.body[`${key}_links`]).toBeUndefined();
    }
  });

  it('3. an offset past 2^63', async () => {
    expect(fault(await t.request('GET', '/v3/volumes?offset=99999999999999999999'), 400)).toMatch(
      /offset 99999999999999999999 is larger than the maximum/,
    );
  });

  it('4. If-Match past 32 bits, or not a number', async () => {
    for (const v of ['99999999999', '1e+23', 'Infinity', '9223372036854775808']) {
      expect(fault(await t.request('DELETE', `/v3/volumes/${V}`, undefined, { 'if-match': v }), 400)).toMatch(/If-Match must be a version/);
      fault(await t.request('POST', `/v3/volumes/${V}/action`, { 'os-extend': { new_size: 2 } }, { 'if-match': v }), 400);
      fault(await t.request('DELETE', `/v3/snapshots/${V}`, undefined, { 'if-match': v }), 400);
    }
    const res = await t.request('GET', `/v3/volumes/${V}`);
    expect(res.body.volume.status).toBe('available');
  });

  it('5. a NUL anywhere it would be stored or filtered', async () => {
    const bodies: [string, string, unknown][] = [
      ['POST', '/v3/volumes', { volume: { size: 1, name: 'a\u0000b' } }],
      ['POST', '/v3/volumes', { volume: { size: 1, description: '\u0000' } }],
      ['POST', '/v3/volumes', { volume: { size: 1, metadata: { 'k\u0000': 'v' } } }],
      ['POST', '/v3/volumes', { volume: { size: 1, metadata: { k: 'v\u0000' } } }],
      ['PUT', `/v3/volumes/${V}`, { volume: { name: 'a\u0000' } }],
      ['POST', '/v3/attachments', { attachment: { volume_uuid: V, instance_uuid: 'i\u0000' } }],
      ['POST', '/v3/attachments', { attachment: { volume_uuid: V, connector: { host: 'h\u0000' } } }],
      ['POST', `/v3/volumes/${V}/action`, { 'os-attach': { host_name: 'h\u0000' } }],
    ];
    for (const [method, path, body] of bodies) expect(fault(await t.request(method, path, body), 400)).toMatch(/NUL character/);
    for (const q of ['name=a%00b', 'metadata=%7B%22k%22%3A%22%00%22%7D', 'instance_id=%00']) {
      expect(fault(await t.request('GET', `/v3/${q.startsWith('instance') ? 'attachments' : 'volumes'}?${q}`), 400)).toMatch(
        /NUL character/,
      );
    }
    expect(fault(await t.request('GET', '/v3/%00/volumes'), 400)).toMatch(/project_id in the request path/);
  });

  it('6. a lone surrogate in metadata, a connector or the metadata filter', async () => {
    expect(fault(await t.request('POST', '/v3/volumes', '{"volume": {"size": 1, "metadata": {"k": "\\ud800"}}}'), 400)).toMatch(
      /lone UTF-16 surrogate/,
    );
    fault(await t.request('POST', '/v3/attachments', `{"attachment": {"volume_uuid": "${V}", "connector": {"host": "\\udc00"}}}`), 400);
    fault(await t.request('GET', '/v3/volumes?metadata=%7B%22k%22%3A%22%5Cud800%22%7D'), 400);
  });

  it('7. an action named after a built-in property; metadata key __proto__ is kept', async () => {
    for (const name of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf']) {
      expect(fault(await t.request('POST', `/v3/volumes/${V}/action`, `{"${name}": null}`), 400)).toMatch(/no such action/);
      fault(await t.request('POST', `/v3/volumes/${crypto.randomUUID()}/action`, `{"${name}": null}`), 400);
    }
    const res = await t.request('POST', '/v3/volumes', '{"volume": {"size": 1, "metadata": {"__proto__": "x", "a": "b"}}}');
    expect(res.status).toBe(202);
    const entries = (m: object) => Object.entries(m).sort(([a], [b]) => a.localeCompare(b));
    expect(entries(res.body.volume.metadata)).toEqual([
      ['__proto__', 'x'],
      ['a', 'b'],
    ]);
    const shown = await t.request('GET', `/v3/volumes/${res.body.volume.id}`);
    expect(entries(shown.body.volume.metadata)).toEqual([
      ['__proto__', 'x'],
      ['a', 'b'],
    ]);
  });

  it('8. deeply nested JSON', async () => {
    const deep = (n: number) => `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`;
    for (const [method, path, body] of [
      ['POST', '/v3/volumes', `{"volume": {"size": 1, "metadata": ${deep(10_000)}}}`],
      ['POST', '/v3/volumes', `{"volume": {"size": 1, "x": ${deep(10_000)}}}`],
      ['POST', `/v3/volumes/${V}/action`, `{"os-extend": ${deep(10_000)}}`],
      ['POST', '/v3/attachments', `{"attachment": {"volume_uuid": "${V}", "connector": ${deep(10_000)}}}`],
      ['PUT', `/v3/volumes/${V}`, `${'['.repeat(50_000)}${']'.repeat(50_000)}`],
    ] as const) {
      expect(fault(await t.request(method, path, body), 400)).toMatch(/nested deeper than 32 levels/);
    }
  });

  it('9. a metadata filter on attachments', async () => {
    expect(fault(await t.request('GET', '/v3/attachments?metadata={}'), 400)).toMatch(/attachments have no metadata/);
  });

  it('10. framework errors are in the fault shape with a documented status', async () => {
    expect(fault(await t.request('GET', '/v3/volumes/%zz'), 400)).toMatch(/not valid percent-encoded UTF-8/);
    expect(fault(await t.request('GET', `/v3/volumes/${'a'.repeat(150)}`), 404)).toMatch(/could not be found/);
    expect(fault(await t.request('GET', `/v3/volumes/${'a'.repeat(600)}`), 414)).toMatch(/longer than 500 characters/);
    fault(await t.request('POST', '/v3/volumes', '{"volume": ', {}), 400);
    fault(await t.request('POST', '/v3/volumes', 'x'.repeat(2 * 1024 * 1024)), 413);
    fault(await t.request('POST', '/v3/volumes', '<volume/>', { 'content-type': 'application/xml' }), 415);
    // One rule for every content type that is not JSON, whatever the body holds.
    for (const type of [
      'text/plain',
      'text/plain; charset=utf-8',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/octet-stream',
    ]) {
      expect(fault(await t.request('POST', '/v3/volumes', '{"volume": {"size": 1}}', { 'content-type': type }), 415), type).toMatch(
        /send application\/json/,
      );
    }
    expect(
      (await t.request('POST', '/v3/volumes', '{"volume": {"size": 1}}', { 'content-type': 'application/json; charset=utf-8' })).status,
    ).toBe(202);
  });

  it('12. a message repeats at most a bounded part of what was sent, and says how long it was', async () => {
    const long = 'n'.repeat(100_000);
    for (const [method, path, body] of [
      ['POST', '/v3/volumes', { volume: { size: 1, name: long } }],
      ['POST', '/v3/volumes', { volume: { size: long } }],
      ['POST', '/v3/volumes', { volume: { size: 1, metadata: { [long]: 'v' } } }],
      ['POST', '/v3/volumes', { volume: { size: 1, [long]: 1 } }],
      ['GET', `/v3/volumes?sort=${long}`, undefined],
    ] as const) {
      const message = fault(await t.request(method, path, body), 400);
      expect(message.length, `${method} ${path}: ${message.slice(0, 200)}`).toBeLessThan(1000);
      expect(message).toMatch(/… \(100000 characters\)/);
    }
  });

  it('11. a non-UUID volume_id does not skip the checks of the other parameters', async () => {
    expect(fault(await t.request('GET', '/v3/snapshots?volume_id=x&limit=abc'), 400)).toMatch(/limit must be/);
    expect(fault(await t.request('GET', '/v3/snapshots?volume_id=x&sort=bogus'), 400)).toMatch(/Invalid sort key/);
    expect(fault(await t.request('GET', '/v3/attachments?volume_id=x&marker=y'), 404)).toMatch(/Marker y/);
    expect((await t.request('GET', '/v3/snapshots?volume_id=x')).body).toEqual({ snapshots: [] });
  });
});
