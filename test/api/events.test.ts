/**
 * GET /v3/events over real HTTP: the transitions of a volume arrive as
 * server-sent events as they happen, filtered, in order, and a stream
 * resumed from a Last-Event-ID replays what came after it.
 */
import { describe, expect, it } from 'vitest';
import { HEADERS, useApp } from '../helpers/app.ts';

const t = useApp({ listen: true });

interface Sse {
  id: number;
  data: { resource_id: string; resource_type: string; event: string; from: string | null; to: string; version: number };
}

/**
 * Open a stream (resolves when its headers came: the server subscribes
 * before it sends them), then read its events until `done` says enough,
 * woken by each chunk that arrives.
 */
async function openEvents(path: string, headers: Record<string, string> = {}) {
  const controller = new AbortController();
  const res = await fetch(`${t.url}${path}`, { headers: { ...HEADERS, ...headers }, signal: controller.signal });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/event-stream/);
  const reader = res.body!.getReader();
  const decoder = new TextDecoder();
  return async function collect(done: (events: Sse[]) => boolean): Promise<Sse[]> {
    let buffer = '';
    const events: Sse[] = [];
    try {
      while (!done(events)) {
        const { value, done: ended } = await reader.read();
        if (ended) break;
        buffer += decoder.decode(value, { stream: true });
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const frame = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const id = /^id: (\d+)$/m.exec(frame)?.[1];
          const data = /^data: (.*)$/m.exec(frame)?.[1];
          if (id && data) events.push({ id: Number(id), data: JSON.parse(data) as Sse['data'] });
        }
      }
    } finally {
      controller.abort();
    }
    return events;
  };
}

describe('GET /v3/events', () => {
  it("streams a volume's transitions as they happen, in order, filtered to it; Last-Event-ID resumes", async () => {
    const other = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    // Subscribe first, then create: the stream shows the new volume's way to available.
    const collect = await openEvents('/v3/events?resource_type=volume');
    const created = await t.request('POST', '/v3/volumes', { volume: { size: 1 } });
    const id: string = created.body.volume.id;
    const all = await collect((events) => events.some((e) => e.data.resource_id === id && e.data.to === 'available'));
    const events = all.filter((e) => e.data.resource_id === id);
    expect(events[0]!.data).toMatchObject({ from: null, event: 'CREATE', version: 1 });
    expect(events.map((e) => e.data.to).at(-1)).toBe('available');
    expect(events.map((e) => e.data.version)).toEqual(events.map((_, i) => events[0]!.data.version + i));
    for (let i = 1; i < events.length; i++) expect(events[i]!.id).toBeGreaterThan(events[i - 1]!.id);
    // Made before the stream opened: not in it.
    expect(all.some((e) => e.data.resource_id === other.body.volume.id && e.data.version === 1)).toBe(false);

    // Resumed from its first event: the rest of its history again, filtered by id.
    const resume = await openEvents(`/v3/events?resource_id=${id}`, { 'last-event-id': String(events[0]!.id) });
    const resumed = await resume((es) => es.some((e) => e.data.to === 'available'));
    expect(resumed.map((e) => e.data.version)).toEqual(events.slice(1).map((e) => e.data.version));
  });

  it('refuses a bad filter or Last-Event-ID with a 400 in the fault shape', async () => {
    for (const q of ['resource_type=bogus', 'resource_id=x', 'last_event_id=abc']) {
      const res = await t.request('GET', `/v3/events?${q}`);
      expect(res.status, q).toBe(400);
      expect(Object.keys(res.body)).toEqual(['badRequest']);
    }
  });
});
