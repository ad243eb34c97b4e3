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
 *
 * A waiter is a lease this process renews (db/waiters.ts): if the process
 * dies, its waiters stop being renewed, and the next in line, which looks
 * again at least once per lease even without a notification, goes ahead
 * within WAITER_LEASE_MS instead of waiting out the dead one's deadline.
 */
import type { Sql } from '../db/connect.ts';
import { STATE_CHANNEL } from '../db/cas.ts';
import { headOf, joinQueue, leaveQueue, purgeExpiredWaiters, renewWaiters, WAITER_LEASE_MS, type WaitRef } from '../db/waiters.ts';
import { isResourceType, modelOf } from '../machines/index.ts';
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
function waitable(err: unknown): { ref: WaitRef; event: string } | undefined {
  if (!(err instanceof ApiError) || !err.refusal) return undefined;
  const { kind, ref, event } = err.refusal;
  return kind === 'busy' || kind === 'invalid' ? { ref, event } : undefined;
}

/**
 * Can `event` move a `type` row in `state` at all (some transition for it,
 * whatever its guards)? If not, trying again there is a certain refusal,
 * and a waiter sleeps on: a volume being created moves through
 * `creating.scheduling` and `creating.backend`, and a delete that waits for
 * it is tried again once, when it is `available`, not at every step. An
 * unknown type or state (a newer node's machine) may: try.
 */
function mayMove(type: string, state: string, event: string): boolean {
  if (!isResourceType(type)) return true;
  const index = modelOf(type).index;
  return !index.leaves.includes(state) || index.candidates(state, event).length > 0;
}

/** One queued request of this process: the event it retries, and whether the row moved where that may go. */
interface Waiter {
  /** the event last refused (another attempt may be refused for another event of the same row) */
  event: string;
  /** a notification that may matter came since the last attempt began */
  changed: boolean;
  wake: (() => void) | undefined;
}

/** What this process knows of one resource it has queued waiters for. */
interface Watch {
  /** queued waiters of this process */
  waiters: Set<Waiter>;
}

export class Waits {
  private readonly watched = new Map<string, Watch>();
  /** this process's waiters rows, renewed while they wait */
  private readonly mine = new Set<number>();
  private unlisten: (() => Promise<void>) | undefined;
  private purge: NodeJS.Timeout | undefined;
  private renewal: NodeJS.Timeout | undefined;

  constructor(private readonly sql: Sql) {}

  async start(): Promise<void> {
    const listener = await this.sql.listen(
      STATE_CHANNEL,
      (payload) => this.wake(payload),
      // (Re)connected: whatever happened meanwhile, let every waiter look again.
      () => [...this.watched.keys()].forEach((k) => this.wake(k)),
    );
    this.unlisten = () => listener.unlisten();
    this.purge = setInterval(() => void purgeExpiredWaiters(this.sql).catch(() => {}), 60_000);
    this.purge.unref();
    this.renewal = setInterval(() => void renewWaiters(this.sql, [...this.mine]).catch(() => {}), WAITER_LEASE_MS / 3);
    this.renewal.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.purge);
    clearInterval(this.renewal);
    await this.unlisten?.().catch(() => {});
  }

  /** `<type>:<id>[:<state>]`: the row moved to `state` (a waiter whose event cannot go there sleeps on), or anything may have changed. */
  private wake(payload: string) {
    const [type = '', id = '', state] = payload.split(':');
    const watch = this.watched.get(`${type}:${id}`);
    if (!watch) return;
    for (const w of watch.waiters) {
      if (state !== undefined && !mayMove(type, state, w.event)) continue;
      w.changed = true;
      w.wake?.();
    }
  }

  private watch(key: string, event: string): { watch: Watch; waiter: Waiter } {
    const watch = this.watched.get(key) ?? { waiters: new Set() };
    const waiter: Waiter = { event, changed: false, wake: undefined };
    watch.waiters.add(waiter);
    this.watched.set(key, watch);
    return { watch, waiter };
  }

  private unwatch(key: string, watch: Watch, waiter: Waiter) {
    watch.waiters.delete(waiter);
    if (watch.waiters.size === 0) this.watched.delete(key);
  }

  /**
   * Resolves once a notification that may matter to `waiter` has arrived
   * since its last attempt began, or after `ms`. The flag, set by
   * notifications and cleared only as an attempt begins, is what keeps a
   * notification that arrived during the last attempt from being lost (the
   * attempt saw the old state, the wake-up came before we listened again:
   * without it we would sleep until the deadline).
   */
  private changed(waiter: Waiter, ms: number): Promise<void> {
    if (waiter.changed) return Promise.resolve();
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        waiter.wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, ms);
      waiter.wake = done;
    });
  }

  /** Run `attempt`; if the machine refuses it, wait (up to `seconds`) and run it again. */
  async attempt<T>(seconds: number, attempt: () => Promise<T>): Promise<T> {
    try {
      return await attempt();
    } catch (err) {
      const refused = waitable(err);
      if (!refused || seconds <= 0) throw err;
      return this.queued(refused.ref, refused.event, seconds, attempt, err);
    }
  }

  private async queued<T>(ref: WaitRef, event: string, seconds: number, attempt: () => Promise<T>, first: unknown): Promise<T> {
    const deadline = Date.now() + seconds * 1000;
    const key = `${ref.type}:${ref.id}`;
    // Watch before joining: from the moment the waiters row exists every
    // change of the resource notifies, and none of those may be missed.
    const { watch, waiter } = this.watch(key, event);
    let me: number | undefined;
    let last = first;
    try {
      me = await joinQueue(this.sql, ref, seconds);
      this.mine.add(me);
      // Look once at once (a change between the refusal and joining would
      // otherwise be missed), then after each notification, and at least
      // once per lease (a dead head of the queue does not notify).
      for (let first = true; ; first = false) {
        if (!first) {
          const left = deadline - Date.now();
          if (left <= 0) throw last;
          await this.changed(waiter, Math.min(left, WAITER_LEASE_MS));
        }
        waiter.changed = false;
        const { head, state } = await headOf(this.sql, ref);
        if (head !== me) continue; // an earlier waiter goes first
        // Still where the event has no transition (the look once at once, after joining, finds a
        // volume being created as the refusal did): a certain refusal, not worth a try. Read after
        // joining, so a move after this read notifies us.
        if (state !== undefined && !mayMove(ref.type, state, waiter.event)) continue;
        try {
          return await attempt();
        } catch (err) {
          const again = waitable(err);
          if (!again) throw err;
          last = err;
          if (again.ref.type !== ref.type || again.ref.id !== ref.id) throw err; // now refused by another resource
          waiter.event = again.event;
        }
        if (Date.now() >= deadline) throw last;
      }
    } finally {
      this.unwatch(key, watch, waiter);
      if (me !== undefined) {
        this.mine.delete(me);
        await leaveQueue(this.sql, ref, me).catch(() => {});
      }
    }
  }
}
