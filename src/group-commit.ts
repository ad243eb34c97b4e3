/**
 * Group commit: transitions that arrive together are sent together.
 *
 * Every transition is one statement, and one statement per round trip caps
 * a node at what one connection can turn around (about 0.6 × pgbench's
 * one-statement rate from Node). Here, the events of one machine and one
 * kind that callers send on the pool within one turn of the event loop (or
 * within `windowMs`, when set) go to PostgreSQL as ONE statement
 * (Enforcer.applyBatch, db/cas.ts compileBatch): the rows locked in id order,
 * each row's CAS and history as alone, each caller given its own outcome.
 *
 * Nothing waits for company: a flush is scheduled when the first event of
 * a group arrives, after the callbacks already queued (setImmediate), so a
 * lone event leaves at once, as the single statement it always was, and
 * under load the events that piled up in one turn share a round trip. A
 * row named twice in one turn goes in another statement, sent alongside:
 * the two meet on the row's lock as any two statements do. (Only
 * concurrent callers name a row twice; one caller's events on a row are
 * sequential, each awaiting the one before, so their order stands.)
 *
 * Only events that need no transaction are grouped (Enforcer.batchable):
 * those that give leases back or change quota usage run with their
 * companions in db/tx.ts, as before.
 */
import type { Sql } from '../db/connect.ts';
import type { ApplyOptions, Enforcer, Outcome, Ref } from './enforcer.ts';
import type { EventMap, ResourceType } from '../machines/index.ts';

export interface GroupCommitOptions {
  /** at most this many rows per statement (a bigger group is split) */
  max: number;
  /** wait this long for company after the first event (0: the current turn of the event loop only) */
  windowMs: number;
}

interface Waiting {
  readonly id: string;
  readonly event: EventMap[ResourceType];
  readonly opts: ApplyOptions;
  readonly resolve: (o: Outcome) => void;
  readonly reject: (e: unknown) => void;
}

export class GroupCommit {
  private readonly pending = new Map<string, { type: ResourceType; items: Waiting[] }>();

  constructor(
    private readonly enforcer: Enforcer,
    /** the pool whose transitions are grouped */
    readonly sql: Sql,
    private readonly options: GroupCommitOptions = { max: 64, windowMs: 0 },
  ) {}

  apply<T extends ResourceType>(ref: Ref<T>, event: EventMap[T], opts: ApplyOptions): Promise<Outcome> {
    const key = `${ref.type}:${event.type}`;
    return new Promise<Outcome>((resolve, reject) => {
      let group = this.pending.get(key);
      if (!group) {
        group = { type: ref.type, items: [] };
        this.pending.set(key, group);
        const flush = () => void this.flush(key);
        if (this.options.windowMs > 0) setTimeout(flush, this.options.windowMs);
        else setImmediate(flush);
      }
      group.items.push({ id: ref.id, event, opts, resolve, reject });
    });
  }

  private async flush(key: string): Promise<void> {
    const group = this.pending.get(key);
    if (!group) return;
    this.pending.delete(key);
    // Rounds: the first time each row is named, then the second…; each round in statements of
    // at most `max` rows. All are sent at once, on as many connections as the pool has: rows a
    // round shares with another are locked by both in id order, so they wait on each other as
    // two single statements would, and never in a circle. (Sending the rounds one after another
    // made 64 callers on one row 0.59 × pgbench's 8 clients: two statements in flight at most.)
    const chunks: Waiting[][] = [];
    let rest = group.items;
    while (rest.length > 0) {
      const seen = new Set<string>();
      const round: Waiting[] = [];
      const later: Waiting[] = [];
      for (const item of rest) {
        if (seen.has(item.id)) later.push(item);
        else {
          seen.add(item.id);
          round.push(item);
        }
      }
      round.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
      for (let i = 0; i < round.length; i += this.options.max) chunks.push(round.slice(i, i + this.options.max));
      rest = later;
    }
    await Promise.all(chunks.map((chunk) => this.send(group.type, chunk)));
  }

  private async send(type: ResourceType, chunk: Waiting[]): Promise<void> {
    try {
      const settled = await this.enforcer.applyBatch(this.sql, type, chunk);
      settled.forEach((s, i) => (s.status === 'fulfilled' ? chunk[i]!.resolve(s.value) : chunk[i]!.reject(s.reason)));
    } catch (err) {
      for (const item of chunk) item.reject(err);
    }
  }
}
