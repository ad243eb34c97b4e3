/**
 * A worker: claims pending rows from the state table and runs their steps.
 *
 * Woken by LISTEN/NOTIFY (the CAS statements notify when a row becomes
 * pending work), with a slow poll as a safety net for a lost notification
 * or a dropped LISTEN connection. Registers itself in `workers` and
 * heartbeats there.
 */
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { WORK_CHANNEL } from '../../db/cas.ts';
import type { Sql } from '../../db/connect.ts';
import { claim, unclaim, type ClaimedRow } from '../../db/queue.ts';
import type { Driver } from '../drivers/driver.ts';
import type { Enforcer } from '../enforcer.ts';
import { stepFor, type StepContext } from './steps.ts';

export interface WorkerOptions {
  sql: Sql;
  enforcer: Enforcer;
  driver: Driver;
  /** steps run at once */
  concurrency: number;
  /** poll interval when no notification comes */
  pollMs: number;
  heartbeatMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

/** A wake-up signal: `wait(ms)` resolves on the next `fire()` or after `ms`. */
class Signal {
  private waiters: (() => void)[] = [];
  private pending = false;
  fire() {
    this.pending = true;
    const ws = this.waiters;
    this.waiters = [];
    ws.forEach((w) => w());
  }
  wait(ms: number): Promise<void> {
    if (this.pending) {
      this.pending = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.pending = false;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.waiters.push(done);
    });
  }
}

export class Worker {
  readonly id: string;
  private readonly opts: WorkerOptions;
  private readonly ctx: StepContext;
  private readonly inflight = new Map<string, Promise<void>>();
  private readonly signal = new Signal();
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private heartbeat: NodeJS.Timeout | undefined;
  private unlisten: (() => Promise<void>) | undefined;
  /** idle() waiters, each with the claim round it must see finish empty */
  private idleWaiters: { after: number; resolve: () => void }[] = [];
  /** claim rounds started */
  private round = 0;
  /** steps completed, for tests and logs */
  completed = 0;

  constructor(opts: WorkerOptions) {
    this.opts = opts;
    this.id = `worker:${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    const log = opts.log ?? (() => {});
    this.ctx = { sql: opts.sql, enforcer: opts.enforcer, driver: opts.driver, workerId: this.id, log };
  }

  async start(): Promise<void> {
    const { sql } = this.opts;
    await sql`INSERT INTO workers (id, host, pid) VALUES (${this.id}, ${hostname()}, ${process.pid})`;
    const beat = this.opts.heartbeatMs ?? 1000;
    this.heartbeat = setInterval(() => {
      sql`UPDATE workers SET heartbeat_at = now() WHERE id = ${this.id}`.catch((err) =>
        this.ctx.log('heartbeat failed', { error: String(err) }),
      );
    }, beat);
    this.heartbeat.unref();
    const listener = await sql.listen(WORK_CHANNEL, () => this.signal.fire(), () => this.signal.fire());
    this.unlisten = listener.unlisten;
    this.loopDone = this.loop();
  }

  /** Stop claiming, let in-flight steps finish, deregister. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.signal.fire();
    await this.loopDone;
    await Promise.allSettled(this.inflight.values());
    clearInterval(this.heartbeat);
    await this.unlisten?.().catch(() => {});
    await this.opts.sql`DELETE FROM workers WHERE id = ${this.id}`.catch(() => {});
  }

  /**
   * Resolves once a claim round that started after this call found
   * nothing, with nothing in flight: everything queued before the call is
   * done (tests, and the CLI's one-shot runs).
   */
  idle(): Promise<void> {
    const after = this.round;
    this.signal.fire();
    return new Promise((resolve) => this.idleWaiters.push({ after, resolve }));
  }

  /** Ask the loop to look for work now (in-process callers that just queued some). */
  poke(): void {
    this.signal.fire();
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const free = this.opts.concurrency - this.inflight.size;
      if (free > 0) {
        const round = ++this.round;
        let rows: ClaimedRow[] = [];
        try {
          rows = await claim(this.opts.sql, this.id, free);
        } catch (err) {
          this.ctx.log('claim failed', { error: String(err) });
        }
        for (const row of rows) this.run(row);
        if (rows.length === 0 && this.inflight.size === 0) this.notifyIdle(round);
        if (rows.length === free) continue; // there may be more
      }
      await this.signal.wait(this.opts.pollMs);
    }
  }

  private notifyIdle(round: number) {
    const ready = this.idleWaiters.filter((w) => w.after < round);
    this.idleWaiters = this.idleWaiters.filter((w) => w.after >= round);
    ready.forEach((w) => w.resolve());
  }

  private run(row: ClaimedRow): void {
    const key = `${row.resource_type}:${row.resource_id}`;
    const step = stepFor(row.resource_type, row.state);
    const task = (async () => {
      try {
        if (!step) throw new Error(`no step for ${row.resource_type} in ${row.state}`);
        await step(this.ctx, row);
        this.completed++;
      } catch (err) {
        // A bug or an outage, not a backend failure: give the row back to be tried again.
        this.ctx.log('step failed; handing the row back', { key, state: row.state, error: String(err) });
        await unclaim(this.opts.sql, this.id, row.resource_type, row.resource_id).catch(() => {});
      } finally {
        this.inflight.delete(key);
        this.signal.fire();
      }
    })();
    this.inflight.set(key, task);
  }
}
