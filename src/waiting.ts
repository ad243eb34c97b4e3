/**
 * Waiting instead of failing (`Prefer: wait=N`, DESIGN decision 3).
 *
 * By default a refused transition answers at once. A request that asks to
 * wait is instead retried whenever the resource that refused it changes,
 * until the machine allows it or the time runs out, and then answers as
 * the last attempt decided. No polling: the request joins the resource's
 * waiters queue, whose existence makes every CAS on that resource notify
 * (`volstate_state`), and this process LISTENs once for all its waiters.
 *
 * Order: waiters of one resource are served in arrival order, across
 * nodes: only the oldest live waiter retries; when it is done (success,
 * another refusal kind, or time out) it leaves the queue and wakes the
 * next. A request that does not wait is not queued and may overtake.
 */
import type { Sql } from '../db/connect.ts';
import { STATE_CHANNEL } from '../db/cas.ts';
import { headOf, joinQueue, leaveQueue, purgeExpiredWaiters, type WaitRef } from '../db/waiters.ts';
import { ApiError } from './errors.ts';

/** Longest wait a client may ask for, in seconds. */
export const MAX_WAIT_SECONDS = 60;

/** The seconds of `Prefer: wait=N` (RFC 7240), capped; undefined when absent. */
export function preferredWait(header: string | string[] | undefined): number | undefined {
  const value = Array.isArray(header) ? header.join(',') : header;
  if (!value) return undefined;
  const m = /(?:^|[,;\s])wait\s*=\s*"?(\d+)"?/i.exec(value);
  if (!m) return undefined;
  return Math.min(Number(m[1]), MAX_WAIT_SECONDS);
}

/** The refusals worth waiting out: the machine said busy or not now, not "no such thing". */
function waitable(err: unknown): WaitRef | undefined {
  if (!(err instanceof ApiError) || !err.refusal) return undefined;
  const { kind, ref } = err.refusal;
  return kind === 'busy' || kind === 'invalid' ? ref : undefined;
}

export class Waits {
  private readonly local = new Map<string, Set<() => void>>();
  private unlisten: (() => Promise<void>) | undefined;
  private purge: NodeJS.Timeout | undefined;

  constructor(private readonly sql: Sql) {}

  async start(): Promise<void> {
    const listener = await this.sql.listen(
      STATE_CHANNEL,
      (payload) => this.wake(payload),
      // (Re)connected: whatever happened meanwhile, let every waiter look again.
      () => [...this.local.keys()].forEach((k) => this.wake(k)),
    );
    this.unlisten = listener.unlisten;
    this.purge = setInterval(() => void purgeExpiredWaiters(this.sql).catch(() => {}), 60_000);
    this.purge.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.purge);
    await this.unlisten?.().catch(() => {});
  }

  private wake(key: string) {
    for (const w of this.local.get(key) ?? []) w();
  }

  /** Resolves on a notification for `key`, or after `ms`. */
  private changed(key: string, ms: number): Promise<void> {
    return new Promise((resolve) => {
      const set = this.local.get(key) ?? new Set();
      this.local.set(key, set);
      const done = () => {
        clearTimeout(timer);
        set.delete(done);
        if (set.size === 0) this.local.delete(key);
        resolve();
      };
      const timer = setTimeout(done, ms);
      set.add(done);
    });
  }

  /** Run `attempt`; if the machine refuses it, wait (up to `seconds`) and run it again. */
  async attempt<T>(seconds: number, attempt: () => Promise<T>): Promise<T> {
    try {
      return await attempt();
    } catch (err) {
      const ref = waitable(err);
      if (!ref || seconds <= 0) throw err;
      return this.queued(ref, seconds, attempt, err);
    }
  }

  private async queued<T>(ref: WaitRef, seconds: number, attempt: () => Promise<T>, first: unknown): Promise<T> {
    const deadline = Date.now() + seconds * 1000;
    const key = `${ref.type}:${ref.id}`;
    const me = await joinQueue(this.sql, ref, seconds);
    let last = first;
    try {
      // Once queued, every change of the resource notifies: look once now
      // (a change between the refusal and joining would be missed), then
      // on each notification.
      for (let look = true; ; look = false) {
        if (!look) {
          const left = deadline - Date.now();
          if (left <= 0) throw last;
          await this.changed(key, left);
        }
        if ((await headOf(this.sql, ref)) !== me) continue; // an earlier waiter goes first
        try {
          return await attempt();
        } catch (err) {
          const again = waitable(err);
          if (!again) throw err;
          last = err;
          if (again.type !== ref.type || again.id !== ref.id) throw err; // now refused by another resource
        }
        if (Date.now() >= deadline) throw last;
      }
    } finally {
      await leaveQueue(this.sql, ref, me).catch(() => {});
    }
  }
}
