/**
 * One tail of the history per node, shared by every `GET /v3/events`
 * stream it serves: it reads the transitions after the last one it
 * delivered and hands each to the subscribers whose filter it passes.
 * Every node reads the one history, so every node's stream shows every
 * node's transitions.
 *
 * Woken by the notifications the CAS statements already send (new work,
 * waiters), and at the latest every `pollMs` while anybody is subscribed;
 * idle (no query at all) when nobody is. A NOTIFY per transition would
 * wake it sooner, but NOTIFY takes a global lock at commit, and every
 * transition would pay for it whether anybody watches or not.
 *
 * Ids are handed out at insert, and transactions commit in another order:
 * id 100 may commit after 101 was read. So the tail stops at a gap in the
 * ids, and passes it only once it is `gapMs` old (then it is a rolled-back
 * transaction's id, which never comes). A subscriber may resume from any
 * id it was given (Last-Event-ID): the history is the replay.
 */
import type { Sql } from '../db/connect.ts';
import { lastTransitionId, transitionsAfter, type TransitionEvent } from '../db/events.ts';
import { STATE_CHANNEL, WORK_CHANNEL } from '../db/cas.ts';

export interface Subscriber {
  /** deliver transitions after this id */
  after: number;
  accept(e: TransitionEvent): boolean;
  send(e: TransitionEvent): void;
}

export class TransitionTail {
  private readonly subscribers = new Set<Subscriber>();
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private unlisten: (() => Promise<void>)[] = [];
  private stopped = false;

  constructor(
    private readonly sql: Sql,
    private readonly opts: { pollMs: number; gapMs: number } = { pollMs: 250, gapMs: 2000 },
  ) {}

  /** The id a stream with no Last-Event-ID starts after: the newest now. */
  now(): Promise<number> {
    return lastTransitionId(this.sql);
  }

  subscribe(s: Subscriber): () => void {
    this.subscribers.add(s);
    this.running ??= this.run();
    this.poke();
    return () => this.subscribers.delete(s);
  }

  private poke() {
    this.wake?.();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.poke();
    await this.running;
    for (const u of this.unlisten) await u().catch(() => undefined);
  }

  private async run(): Promise<void> {
    for (const channel of [WORK_CHANNEL, STATE_CHANNEL]) {
      const l = await this.sql.listen(channel, () => this.poke()).catch(() => undefined);
      if (l) this.unlisten.push(() => l.unlisten());
    }
    /** id → when the gap before it was first seen */
    const gapSince = new Map<number, number>();
    while (!this.stopped) {
      if (this.subscribers.size > 0) {
        try {
          // One read for every subscriber, from the oldest position among them.
          const from = Math.min(...[...this.subscribers].map((s) => s.after));
          const rows = await transitionsAfter(this.sql, from);
          let expected = from + 1;
          for (const e of rows) {
            if (e.id !== expected) {
              const since = gapSince.get(e.id) ?? Date.now();
              gapSince.set(e.id, since);
              if (Date.now() - since < this.opts.gapMs) break; // an id before it may still commit
            }
            gapSince.delete(e.id);
            for (const s of this.subscribers) {
              if (e.id <= s.after) continue;
              s.after = e.id;
              if (s.accept(e)) s.send(e);
            }
            expected = e.id + 1;
          }
          // Subscribers with nothing new still move to where the read got.
          if (rows.length === 0 || expected > from + 1)
            for (const s of this.subscribers) if (s.after < expected - 1) s.after = expected - 1;
          if (rows.length === 500) continue;
        } catch {
          // The database went away: try again after the pause.
        }
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.opts.pollMs);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
  }
}
