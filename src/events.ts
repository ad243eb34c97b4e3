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
 * ids, and passes it only once the transaction that could hold the missing
 * id has surely ended (db/events.ts, HistoryGaps, as the notification relay
 * does): a slow transaction's transition comes late, never lost. A
 * subscriber may resume from any id it was given (Last-Event-ID): the
 * history is the replay.
 */
import type { Sql } from '../db/connect.ts';
import { HistoryGaps, lastTransitionId, type TransitionEvent } from '../db/events.ts';
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
    private readonly opts: { pollMs: number } = { pollMs: 250 },
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
    const gaps = new HistoryGaps();
    while (!this.stopped) {
      if (this.subscribers.size > 0) {
        try {
          // One read for every subscriber, from the oldest position among them.
          const from = Math.min(...[...this.subscribers].map((s) => s.after));
          // Up to the first id that may still commit: every id up to the last row is delivered or never comes.
          const rows = await gaps.after(this.sql, from);
          for (const e of rows) {
            for (const s of this.subscribers) {
              if (e.id <= s.after) continue;
              s.after = e.id;
              if (s.accept(e)) s.send(e);
            }
          }
          if (rows.length) gaps.forget(Math.min(...[...this.subscribers].map((s) => s.after)));
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
