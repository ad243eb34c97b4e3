/**
 * A harness client: draws operations from its scenario's weights, with its
 * own seeded generator, and sends them over HTTP to the endpoints in turn,
 * as a real Cinder client would (cinderclient's headers, microversion 3.70).
 * Every answer is recorded: the operation, the status, the time it took
 * and the request id the server gave it (what the history checker looks
 * for).
 */
import type { Operation, Scenario } from './scenario.ts';

export interface Outcome {
  op: Operation;
  status: number;
  ms: number;
  /** when the answer came, ms since the run started */
  at: number;
  requestId: string | undefined;
  /** the node that answered (its base URL) */
  node?: string | undefined;
}

/** mulberry32: small, fast, and the same sequence for the same seed everywhere. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The volumes the clients share: they grow with creates and clones and shrink with deletes. */
export class Pool {
  readonly volumes: string[] = [];
  /** the groups the clients made (their volumes are of __DEFAULT__, as the pool's) */
  readonly groups: string[] = [];
  /** the group type the clients' groups are of, made by the first group-create */
  groupType: Promise<string | undefined> | undefined;
  add(id: string) {
    this.volumes.push(id);
  }
  remove(id: string) {
    const i = this.volumes.indexOf(id);
    if (i >= 0) this.volumes.splice(i, 1);
  }
}

/** An answer: status 0 when none came (the node died, or the request timed out). */
export interface Answer {
  status: number;
  body: Record<string, unknown> | null;
  requestId: string | undefined;
  /** the endpoint asked */
  node?: string;
}

/** `{"volume": {"id": …}}` → the id. */
function idIn(body: Answer['body'], key: string): string | undefined {
  const inner = body?.[key] as { id?: unknown } | undefined;
  return typeof inner?.id === 'string' ? inner.id : undefined;
}

export interface ClientOptions {
  endpoints: () => string[];
  token: string;
  scenario: Scenario;
  pool: Pool;
  seed: number;
  started: number;
  record: (o: Outcome) => void;
}

export class Client {
  private readonly random: () => number;
  private turn = 0;
  private readonly ops: [Operation, number][];
  private readonly total: number;

  constructor(private readonly opts: ClientOptions) {
    this.random = rng(opts.seed);
    this.ops = Object.entries(opts.scenario.weights).filter(([, w]) => (w ?? 0) > 0) as [Operation, number][];
    this.total = this.ops.reduce((s, [, w]) => s + w, 0);
  }

  private pick<T>(xs: readonly T[]): T | undefined {
    return xs.length ? xs[Math.floor(this.random() * xs.length)] : undefined;
  }

  private drawOp(): Operation {
    let x = this.random() * this.total;
    for (const [op, w] of this.ops) if ((x -= w) < 0) return op;
    return this.ops.at(-1)![0];
  }

  async request(method: string, path: string, body?: unknown): Promise<Answer> {
    const endpoints = await this.liveEndpoints();
    const base = endpoints[this.turn++ % endpoints.length]!;
    try {
      const r = await fetch(`${base}${path}`, {
        method,
        headers: { 'x-auth-token': this.opts.token, 'openstack-api-version': 'volume 3.70', 'content-type': 'application/json' },
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: AbortSignal.timeout(60_000), // longer than a node waits to learn an in-doubt outcome (VOLSTATE_IN_DOUBT_MS)
      });
      const text = await r.text();
      let parsed: Answer['body'] = null;
      try {
        parsed = text ? (JSON.parse(text) as Answer['body']) : null;
      } catch {
        parsed = null;
      }
      return { status: r.status, body: parsed, requestId: r.headers.get('x-openstack-request-id') ?? undefined, node: base };
    } catch {
      // The node died under the request, or the request timed out: the outcome is unknown.
      return { status: 0, body: null, requestId: undefined, node: base };
    }
  }

  /**
   * The nodes serving now; while none is (all restarting), wait for one,
   * rather than fail a request in no time, again and again (a hot loop that
   * once counted a million 'unknown' operations and starved the harness).
   */
  private async liveEndpoints(): Promise<string[]> {
    for (;;) {
      const endpoints = this.opts.endpoints();
      if (endpoints.length > 0) return endpoints;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  async makeVolume(multiattach: boolean): Promise<string | undefined> {
    const r = await this.request('POST', '/v3/volumes', { volume: { size: 1, multiattach } });
    return r.status === 202 ? idIn(r.body, 'volume') : undefined;
  }

  /** The group type for the clients' groups: made, or (made by another run) found by its name. */
  private async makeGroupType(): Promise<string | undefined> {
    const made = await this.request('POST', '/v3/group_types', { group_type: { name: 'harness' } });
    if (made.status === 202) return idIn(made.body, 'group_type');
    const found = await this.request('GET', '/v3/group_types/harness');
    return found.status === 200 ? idIn(found.body, 'group_type') : undefined;
  }

  /** The first of a volume's snapshots, attachments or backups; `any`: one of them at random. */
  private async firstOf(collection: 'snapshots' | 'attachments' | 'backups', volumeId: string, any = false): Promise<string | undefined> {
    const r = await this.request('GET', `/v3/${collection}?volume_id=${volumeId}`);
    const list = r.body?.[collection];
    if (!Array.isArray(list)) return undefined;
    return ((any ? this.pick(list) : list[0]) as { id?: string } | undefined)?.id;
  }

  /** One operation: draw it, send it, record its answer. False when there was nothing to act on (no operation was made). */
  async step(): Promise<boolean> {
    const op = this.drawOp();
    const { pool, scenario } = this.opts;
    const v = op === 'delete-first' ? pool.volumes[0] : op === 'delete-newest' ? pool.volumes.at(-1) : this.pick(pool.volumes);
    const t0 = performance.now();
    let r: Answer | undefined;
    switch (op) {
      case 'create':
        r = await this.request('POST', '/v3/volumes', { volume: { size: 1, multiattach: this.random() < scenario.multiattach } });
        if (r.status === 202) pool.add(idIn(r.body, 'volume')!);
        break;
      case 'clone':
        if (v) r = await this.request('POST', '/v3/volumes', { volume: { source_volid: v } });
        if (r?.status === 202) pool.add(idIn(r.body, 'volume')!);
        break;
      case 'delete':
      case 'delete-first':
      case 'delete-newest':
      case 'cascade':
        if (v) r = await this.request('DELETE', `/v3/volumes/${v}${op === 'cascade' ? '?cascade=True' : ''}`);
        if (v && (r?.status === 202 || r?.status === 404)) pool.remove(v);
        break;
      case 'snapshot':
        if (v) r = await this.request('POST', '/v3/snapshots', { snapshot: { volume_id: v } });
        break;
      case 'snapshot-delete': {
        const s = v && (await this.firstOf('snapshots', v));
        if (s) r = await this.request('DELETE', `/v3/snapshots/${s}`);
        break;
      }
      case 'revert': {
        const s = v && (await this.firstOf('snapshots', v));
        if (s) r = await this.request('POST', `/v3/volumes/${v}/action`, { revert: { snapshot_id: s } });
        break;
      }
      case 'attach':
        if (v)
          r = await this.request('POST', '/v3/attachments', {
            attachment: { volume_uuid: v, instance_uuid: crypto.randomUUID(), connector: { host: 'harness' } },
          });
        break;
      case 'complete': {
        const a = v && (await this.firstOf('attachments', v));
        if (a) r = await this.request('POST', `/v3/attachments/${a}/action`, { 'os-complete': null });
        break;
      }
      case 'detach': {
        const a = v && (await this.firstOf('attachments', v));
        if (a) r = await this.request('DELETE', `/v3/attachments/${a}`);
        break;
      }
      case 'backup':
      case 'backup-incremental':
        // force: an in-use volume too (a backup reads it through a still image).
        if (v)
          r = await this.request('POST', '/v3/backups', {
            backup: { volume_id: v, force: true, incremental: op === 'backup-incremental' },
          });
        break;
      case 'backup-delete': {
        const b = v && (await this.firstOf('backups', v, true)); // any: the newest is often still being made
        if (b) r = await this.request('DELETE', `/v3/backups/${b}`);
        break;
      }
      case 'restore': {
        // Onto the volume it came from, or (half the time) into a new volume, which joins the pool.
        const b = v && (await this.firstOf('backups', v, true)); // any: the newest is often still being made
        const into = this.random() < 0.5 ? { volume_id: v } : {};
        if (b) r = await this.request('POST', `/v3/backups/${b}/restore`, { restore: into });
        const made = (r?.body?.restore as { volume_id?: unknown } | undefined)?.volume_id;
        if (r?.status === 202 && !('volume_id' in into) && typeof made === 'string') pool.add(made);
        break;
      }
      case 'extend':
        if (v) r = await this.request('POST', `/v3/volumes/${v}/action`, { 'os-extend': { new_size: 2 + Math.floor(this.random() * 4) } });
        break;
      case 'group-create': {
        const type = await (pool.groupType ??= this.makeGroupType());
        if (type)
          r = await this.request('POST', '/v3/groups', { group: { name: 'harness', group_type: type, volume_types: ['__DEFAULT__'] } });
        if (r?.status === 202) pool.groups.push(idIn(r.body, 'group')!);
        break;
      }
      case 'group-join':
      case 'group-leave': {
        // A volume in another group, or not in this one, is refused (400): a legal outcome too.
        const g = this.pick(pool.groups);
        const key = op === 'group-join' ? 'add_volumes' : 'remove_volumes';
        if (g && v) r = await this.request('PUT', `/v3/groups/${g}`, { group: { [key]: v } });
        break;
      }
      case 'group-snapshot': {
        const g = this.pick(pool.groups);
        if (g) r = await this.request('POST', '/v3/group_snapshots', { group_snapshot: { group_id: g, name: 'harness' } });
        break;
      }
      case 'group-snapshot-delete': {
        const g = this.pick(pool.groups);
        const list = g ? (await this.request('GET', `/v3/group_snapshots?group_id=${g}`)).body?.group_snapshots : undefined;
        const gs = Array.isArray(list) ? (this.pick(list) as { id?: string } | undefined)?.id : undefined;
        if (gs) r = await this.request('DELETE', `/v3/group_snapshots/${gs}`);
        break;
      }
      case 'group-delete': {
        const g = this.pick(pool.groups);
        if (g) r = await this.request('POST', `/v3/groups/${g}/action`, { delete: { 'delete-volumes': true } });
        if (g && (r?.status === 202 || r?.status === 404)) pool.groups.splice(pool.groups.indexOf(g), 1);
        break;
      }
    }
    if (!r) return false; // nothing to act on (an empty pool, no snapshot): not an operation
    this.opts.record({
      op,
      status: r.status,
      ms: performance.now() - t0,
      at: Date.now() - this.opts.started,
      requestId: r.requestId,
      node: r.node,
    });
    return true;
  }
}
