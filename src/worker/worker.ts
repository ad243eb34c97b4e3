/**
 * A worker: claims pending rows from the state table and runs their steps.
 * Any number of workers, on any number of nodes, share one database.
 *
 * - Woken by LISTEN/NOTIFY (the CAS statements notify when a row becomes
 *   pending work), with a slow poll as a safety net.
 * - Registered in `workers`, heartbeating. Every worker also recovers the
 *   rows of dead workers (recovery.ts), but only once its own heartbeats
 *   have been good, without a gap, for a whole timeout: after a database
 *   outage (a restart, a failover) every heartbeat is stale, and nobody
 *   may judge the others dead until they have had the time to beat again.
 *   The database judges this in the statement that finds the dead
 *   (db/workers.ts), so a query held through the outage cannot judge on
 *   its clock either.
 * - A step's fence can be lost while it runs (a failover takes the lock's
 *   session with it): before each backend call the step confirms it,
 *   taking it again if it is free and the row still ours, and stops
 *   otherwise (stillFenced).
 * - A step's backend calls run under a global lock on its resource (a
 *   PostgreSQL advisory lock on a session of its own): the state CAS
 *   already keeps two workers from moving one row, and this fence also
 *   keeps a worker that froze (and was judged dead) from touching the
 *   backend object while its successor does. Its lock dies with its
 *   connection. It is taken beside the step's first statements (which
 *   only move the row) and awaited before the first backend call.
 * - Stops gracefully: no new claims; in-flight steps get `drainMs` to
 *   finish; then it deregisters, and whatever it still owns is recovered
 *   by the others at once.
 * - Hands back its own strays: a step that fails on a lost connection
 *   cannot hand its row back either (the database is gone), and a live
 *   worker's rows are never recovered by the others. So with each
 *   recovery round the worker also unclaims the rows it owns but runs no
 *   step for. Claims and this sweep take turns (`exclusive`), so a row
 *   just claimed is always in flight before the sweep can look at it.
 */
import type { NotifyConfig } from '../notify/config.ts';
import { NotificationRelay } from '../notify/relay.ts';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { WORK_CHANNEL } from '../../db/cas.ts';
import type { Sql } from '../../db/connect.ts';
import { announceWork, backingOff, claim, inBackupLane, unclaim, type ClaimedRow } from '../../db/queue.ts';
import { foldUsage } from '../../db/quotas.ts';
import { ensureHistoryPartitions, purge } from '../../db/retention.ts';
import { deregisterWorker, heartbeat, stillOwns, registerWorker, rowsOwnedBy } from '../../db/workers.ts';
import type { Coordination, Lock } from '../coordination/locks.ts';
import { Backends } from '../drivers/backends.ts';
import type { Driver } from '../drivers/driver.ts';
import type { Enforcer } from '../enforcer.ts';
import type { PosixBackupStore } from '../backup/posix.ts';
import { recoverDeadOwners } from './recovery.ts';
import { stepFor, type StepContext } from './steps.ts';

export interface WorkerOptions {
  sql: Sql;
  enforcer: Enforcer;
  /** the backends this node serves, or one driver (a single backend named after it) */
  driver: Driver | Backends;
  /** global locks fence each step (optional in tests without concurrency between workers) */
  coordination?: Coordination;
  /** steps run at once */
  concurrency: number;
  /** of those, steps of the backup lane (StateMeta.backupLane) at once; default min(2, concurrency) */
  backupConcurrency?: number;
  /** poll interval when no notification comes */
  pollMs: number;
  heartbeatMs?: number;
  /** a worker silent this long is dead */
  timeoutMs?: number;
  /** on stop, in-flight steps get this long to finish */
  drainMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
  /** the host it is listed under in os-services (VOLSTATE_HOST); default the machine's host name */
  host?: string;
  /** where backups are written (the backup steps) */
  backupStore?: PosixBackupStore;
  /** retention rounds (db/retention.ts): every `everyMs`, make the history's partitions ahead and, with `keepMs`, purge what is older */
  retention?: { keepMs: number | undefined; everyMs: number };
  /** Cinder's notifications on RabbitMQ, from the history (src/notify/relay.ts): relayed by one worker at a time */
  notify?: NotifyConfig | undefined;
}

/** Another session held a step's fence for the whole wait: it stopped before touching the backend. */
class FencedOut extends Error {
  constructor(key: string) {
    super(`resource ${key} is fenced by another worker`);
  }
}

/** A step's fence was lost (see Worker.stillFenced): it stopped before touching the backend. */
export class FenceLost extends Error {
  constructor(lock: string, why: string) {
    super(`fence ${lock} lost: ${why}`);
    this.name = 'FenceLost';
  }
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
  private readonly opts: Required<Omit<WorkerOptions, 'coordination' | 'log' | 'host' | 'retention' | 'backupStore' | 'notify'>> &
    Pick<WorkerOptions, 'coordination' | 'retention'>;
  /** the notification relay, when VOLSTATE_NOTIFY_URL is set (metrics read it) */
  readonly relay: NotificationRelay | undefined;
  private readonly ctx: StepContext;
  private readonly inflight = new Map<string, Promise<void>>();
  /** the keys of the in-flight steps that are the backup lane's */
  private readonly lane = new Set<string>();
  private readonly signal = new Signal();
  private stopping = false;
  private loopDone: Promise<void> | undefined;
  private timers: NodeJS.Timeout[] = [];
  private unlisten: (() => Promise<void>) | undefined;
  /** stop keeping this process's work (start: keepWork) */
  private unkeep: (() => void) | undefined;
  /** idle() waiters, each with the claim round it must see finish empty */
  private idleWaiters: { after: number; resolve: () => void }[] = [];
  /** claim rounds started */
  private round = 0;
  /** the claim or stray sweep under way (see exclusive) */
  private turn: Promise<unknown> = Promise.resolve();
  /** since when every heartbeat has succeeded (undefined: the last one failed) */
  private healthySince: number | undefined;
  /** steps completed, rows recovered from dead workers, own strays handed back (tests, logs) */
  completed = 0;
  /** steps running now (metrics) */
  get stepsInFlight(): number {
    return this.inflight.size;
  }
  /** of those, the backup lane's (metrics, tests) */
  get backupStepsInFlight(): number {
    return this.lane.size;
  }
  recovered = 0;
  strays = 0;
  /** steps started on rows this process's transitions made ours at birth, with no claim (tests) */
  adopted = 0;
  /** rows handed back because another session held their fence (tests, logs) */
  fenced = 0;
  /** the host this worker's services are listed under (os-services) */
  readonly host: string;
  /** a service of our host is disabled: claim nothing new */
  private disabled = false;
  /** the backup service of our host is disabled: claim no backup-lane work */
  private backupDisabled = false;
  /** whether the worker has seen its host's backup service disabled (tests) */
  get backupsDisabled(): boolean {
    return this.backupDisabled;
  }

  constructor(opts: WorkerOptions) {
    this.opts = {
      heartbeatMs: 1000,
      timeoutMs: 5000,
      drainMs: 10_000,
      ...opts,
      backupConcurrency: opts.backupConcurrency ?? Math.min(2, opts.concurrency),
    };
    this.host = opts.host ?? hostname();
    this.id = `worker:${this.host}:${process.pid}:${randomBytes(3).toString('hex')}`;
    this.ctx = {
      sql: opts.sql,
      enforcer: opts.enforcer,
      backends: opts.driver instanceof Backends ? opts.driver : Backends.single(opts.driver),
      workerId: this.id,
      log: opts.log ?? (() => {}),
      backupStore: opts.backupStore,
    };
    this.relay = opts.notify
      ? new NotificationRelay({ sql: opts.sql, config: opts.notify, holder: this.id, log: this.ctx.log })
      : undefined;
  }

  async start(): Promise<void> {
    const { sql } = this.opts;
    await registerWorker(sql, this.id, this.host, process.pid);
    this.healthySince = Date.now();
    this.every(this.opts.heartbeatMs, () => this.beat());
    this.every(Math.max(100, this.opts.timeoutMs / 2), () => this.recover().then(() => undefined));
    if (this.opts.retention) this.every(this.opts.retention.everyMs, () => this.retain(this.opts.retention!.keepMs));
    const listener = await sql.listen(
      WORK_CHANNEL,
      () => this.signal.fire(),
      () => this.signal.fire(),
    );
    this.unlisten = () => listener.unlisten();
    // The work this node's own requests make is ours while we have a free slot: woken in the
    // process, with no NOTIFY for the whole database to serialize on (src/enforcer.ts keepWork).
    // Until stop() takes it back (its first act).
    this.unkeep = this.opts.enforcer.keepWork({
      id: this.id,
      room: () => !this.disabled && this.freeSlots() > 0,
      adopt: (row) => this.adopt(row),
      wake: () => this.poke(),
    });
    this.loopDone = this.loop();
    this.relay?.start();
  }

  /**
   * One retention round: the history's partitions made ahead, the quota
   * usage slots folded (db/quotas.ts), then (with a retention) what is
   * older purged, in small batches.
   */
  private async retain(keepMs: number | undefined): Promise<void> {
    await ensureHistoryPartitions(this.opts.sql);
    const folded = await foldUsage(this.opts.sql);
    if (folded > 0) this.ctx.log('folded quota usage slots', { resources: folded });
    if (keepMs === undefined) return;
    const report = await purge(this.opts.sql, new Date(Date.now() - keepMs));
    const removed = Object.values(report.rows).reduce((a, n) => a + n, 0) + report.historyRows + report.partitions.length;
    if (removed > 0) this.ctx.log('purged', { ...report.rows, historyRows: report.historyRows, partitions: report.partitions });
  }

  private every(ms: number, fn: () => Promise<void>) {
    let running = false;
    const timer = setInterval(() => {
      if (running || this.stopping) return;
      running = true;
      fn()
        .catch((err) => this.ctx.log('periodic task failed', { error: String(err) }))
        .finally(() => (running = false));
    }, ms);
    timer.unref();
    this.timers.push(timer);
  }

  private async beat(): Promise<void> {
    try {
      const beat = await heartbeat(this.opts.sql, this.id, this.opts.timeoutMs);
      if (this.disabled !== beat.disabled) {
        this.ctx.log(beat.disabled ? 'a service of this host was disabled: claiming no new work' : 'enabled again: claiming work', {
          host: this.host,
        });
        this.disabled = beat.disabled;
        this.signal.fire();
      }
      if (this.backupDisabled !== beat.backupDisabled) {
        this.ctx.log(
          beat.backupDisabled ? 'the backup service of this host was disabled: claiming no backup work' : 'backups enabled again',
          {
            host: this.host,
          },
        );
        this.backupDisabled = beat.backupDisabled;
        this.signal.fire();
      }
      if (beat.gone) {
        // Judged dead and purged (we were silent too long): our rows were
        // recovered; register again and carry on.
        this.ctx.log('worker row was purged; registering again', { id: this.id });
        await registerWorker(this.opts.sql, this.id, this.host, process.pid);
        this.healthySince = Date.now();
      }
      // A beat that hung through an outage is judged by the database (healthy_since, db/workers.ts), not here.
      this.healthySince ??= Date.now();
    } catch (err) {
      this.healthySince = undefined;
      this.ctx.log('heartbeat failed', { error: String(err) });
    }
  }

  /** Run `fn` when no claim or sweep is under way, and keep the others out until it is done. */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.turn.then(fn, fn);
    this.turn = result.catch(() => {});
    return result;
  }

  /** Hand back the rows we own but run no step for (their own hand-back failed). */
  async handBackStrays(): Promise<number> {
    return this.exclusive(async () => {
      let n = 0;
      for (const row of await rowsOwnedBy(this.opts.sql, this.id)) {
        if (this.inflight.has(`${row.resource_type}:${row.resource_id}`)) continue;
        if (await unclaim(this.opts.sql, this.id, row.resource_type, row.resource_id, 0)) n++;
      }
      if (n) {
        this.ctx.log('handed back rows no step of ours was running', { rows: n });
        this.signal.fire();
      }
      this.strays += n;
      return n;
    });
  }

  /** Recover dead workers' rows, once our own heartbeats have been good for a whole timeout. */
  async recover(): Promise<number> {
    if (this.healthySince === undefined) return 0;
    await this.handBackStrays().catch((err) => this.ctx.log('stray sweep failed', { error: String(err) }));
    if (Date.now() - this.healthySince < this.opts.timeoutMs) return 0;
    try {
      const r = await recoverDeadOwners(this.opts.sql, this.opts.enforcer, this.id, this.opts.timeoutMs);
      this.recovered += r.recovered;
      if (r.recovered) this.ctx.log('recovered rows of dead workers', { ...r });
      return r.recovered;
    } catch (err) {
      this.ctx.log('recovery failed', { error: String(err) });
      return 0;
    }
  }

  /** Stop claiming, give in-flight steps `drainMs`, deregister. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    this.unkeep?.();
    this.signal.fire();
    await this.loopDone;
    // Work kept for us and not yet claimed goes to the other nodes now, not at their next poll.
    await announceWork(this.opts.sql).catch(() => {});
    await this.relay?.stop();
    const drained = Promise.allSettled(this.inflight.values());
    await Promise.race([drained, new Promise((r) => setTimeout(r, this.opts.drainMs).unref())]);
    if (this.inflight.size) this.ctx.log('stopping with steps still running; they will be recovered', { steps: this.inflight.size });
    this.timers.forEach(clearInterval);
    await this.unlisten?.().catch(() => {});
    await deregisterWorker(this.opts.sql, this.id).catch(() => {});
  }

  /**
   * Resolves once a claim round that started after this call found
   * nothing, with nothing in flight and no row waiting out a backoff:
   * everything queued before the call is done (tests, and the CLI's
   * one-shot runs).
   */
  idle(): Promise<void> {
    const after = this.round;
    this.signal.fire();
    return new Promise((resolve) => this.idleWaiters.push({ after, resolve }));
  }

  /**
   * Run the step of a row a transition of this process made ours at birth
   * (db/cas.ts KEEPER), once committed: no claim. Room was asked when the
   * statement was sent, so the step runs now even if the slots filled
   * meanwhile (by at most the statements in flight at once). A backup-lane
   * row that finds the lane full, or one that comes once the worker is
   * stopping, is handed back to the queue and announced: another round, or
   * another node, takes it. (A stray sweep that read the row in the instant
   * between its commit and this call hands it back too. The step's fence
   * still keeps every other worker off the backend while it runs; its
   * first transition finds the row not its own and refuses; the row is
   * claimed again and its idempotent step redone: wasted, never unsafe.)
   */
  private adopt(row: ClaimedRow): void {
    const key = `${row.resource_type}:${row.resource_id}`;
    // The row's previous step is still letting its fence go: this one follows it.
    const previous = this.inflight.get(key);
    if (previous) {
      void previous.finally(() => this.adopt(row));
      return;
    }
    const laneFull = inBackupLane(row) && (this.backupDisabled || this.lane.size >= this.opts.backupConcurrency);
    if (this.stopping || laneFull) {
      void unclaim(this.opts.sql, this.id, row.resource_type, row.resource_id, 0)
        .then(() => (this.stopping ? announceWork(this.opts.sql) : this.signal.fire()))
        .catch(() => {});
      return;
    }
    this.adopted++;
    this.run(row);
  }

  /** Ask the loop to look for work now (in-process callers that just queued some). */
  poke(): void {
    this.signal.fire();
  }

  /** Worker slots not taken by a step in flight. */
  private freeSlots(): number {
    return this.opts.concurrency - this.inflight.size;
  }

  private async loop(): Promise<void> {
    while (!this.stopping) {
      const free = this.freeSlots();
      // A power of two, not every count from 1 to the concurrency: the limit is written into the
      // claim's text (db/queue.ts), and PostgreSQL plans each text afresh for its first five
      // executions on each connection; 16 limits on 10 connections kept the claim planned at 0.8 of
      // its executions through a whole bench:control sitting, five limits settle within seconds.
      const ask = free > 0 ? 2 ** Math.floor(Math.log2(free)) : 0;
      if (free > 0 && !this.disabled) {
        const round = ++this.round;
        let rows: ClaimedRow[] = [];
        try {
          rows = await this.exclusive(async () => {
            // The backup lane: with no room in it, its rows are not claimed; with some, a claim
            // may still take more of them than there is room for (one statement picks the oldest
            // rows of any kind): those go straight back, for the others or for later.
            let laneRoom = this.backupDisabled ? 0 : this.opts.backupConcurrency - this.lane.size;
            const claimed = await claim(this.opts.sql, this.id, ask, { backupLane: laneRoom > 0 });
            for (const row of claimed) {
              if (inBackupLane(row) && laneRoom-- <= 0) {
                await unclaim(this.opts.sql, this.id, row.resource_type, row.resource_id, 0).catch(() => {});
                continue;
              }
              this.run(row); // in flight before the turn ends
            }
            return claimed;
          });
        } catch (err) {
          this.ctx.log('claim failed', { error: String(err) });
        }
        // Idle: nothing claimed, nothing in flight, and (asked only when someone waits for it) no row
        // handed back that waits out its backoff, which the next rounds will claim.
        if (rows.length === 0 && this.inflight.size === 0 && this.idleWaiters.length > 0) {
          const waiting = await backingOff(this.opts.sql).catch(() => true);
          if (!waiting) this.notifyIdle(round);
        }
        if (rows.length === ask) continue; // there may be more
      }
      await this.signal.wait(this.opts.pollMs);
    }
  }

  private notifyIdle(round: number) {
    const ready = this.idleWaiters.filter((w) => w.after < round);
    this.idleWaiters = this.idleWaiters.filter((w) => w.after >= round);
    ready.forEach((w) => w.resolve());
  }

  /**
   * Before a step touches the backend: its fence must still be held. A
   * fence lost with its session (the database failed over) is taken again
   * when it is free; and since a worker that judged us dead could have
   * taken the row, done the step and let the fence go meanwhile, the row
   * must also still be ours. Otherwise the
   * step stops (FenceLost) without touching the backend.
   */
  private async stillFenced(fence: Lock, row: ClaimedRow): Promise<void> {
    const confirmed = await fence.confirm();
    if (confirmed === 'lost') throw new FenceLost(fence.name, 'held by another worker, or no database to take it on');
    if (confirmed === 'retaken' && !(await stillOwns(this.opts.sql, this.id, row)))
      throw new FenceLost(fence.name, 'the row is no longer ours');
    if (confirmed === 'retaken') this.ctx.log('fence lost with its session and taken again; the row is still ours', { lock: fence.name });
  }

  private run(row: ClaimedRow): void {
    const key = `${row.resource_type}:${row.resource_id}`;
    const step = stepFor(row.resource_type, row.state);
    if (inBackupLane(row)) this.lane.add(key);
    // Whether the loop must look for work when this step ends (see the finally below).
    let handedBack = false;
    const task = (async () => {
      // The fence is taken beside the step's first statements, not before them: those only
      // move the row (each checks owner = this worker), and the fence guards the backend, so
      // the step waits for it at its first backend call (ctx.fenced). A create's fence round
      // trip then overlaps its SCHEDULE instead of adding to it. Waiting a little (a previous
      // owner may be finishing) and then giving up: FencedOut, and the row is handed back.
      const fencing = this.opts.coordination
        ? this.opts.coordination.lock(`resource-${key}`, { scope: 'global', timeoutMs: 1000 }).catch(() => null)
        : undefined;
      const fenced = async () => {
        const fence = await fencing;
        if (fence === null) throw new FencedOut(key);
        if (fence) await this.stillFenced(fence, row);
      };
      try {
        if (!step) throw new Error(`no step for ${row.resource_type} in ${row.state}`);
        await step(fencing ? { ...this.ctx, fenced } : this.ctx, row);
        this.completed++;
      } catch (err) {
        if (err instanceof FencedOut) {
          // A previous owner (judged dead, but alive and frozen) is still at
          // it: leave the row for later rather than touch the backend too.
          this.ctx.log('resource fenced by another worker; handing the row back', { key });
          this.fenced++;
        } else {
          // A bug or an outage, not a backend failure: give the row back to be tried again.
          this.ctx.log('step failed; handing the row back', { key, state: row.state, error: String(err) });
        }
        await unclaim(this.opts.sql, this.id, row.resource_type, row.resource_id).catch(() => {});
        handedBack = true;
      } finally {
        await (await fencing)?.release().catch(() => {});
        // A claim round now only when it may find something: the worker was full (a NOTIFY that
        // came meanwhile found no free slot), the row was handed back (an unclaim notifies
        // nobody), or idle() waits for a round with nothing in flight. Otherwise every row left
        // for a worker has notified already (db/cas.ts), and an empty claim per step was 2 of a
        // volume lifecycle's 6 claims (bench:control --why).
        const full = this.freeSlots() <= 0 || (this.lane.has(key) && this.lane.size >= this.opts.backupConcurrency);
        this.inflight.delete(key);
        this.lane.delete(key);
        if (full || handedBack || this.idleWaiters.length > 0) this.signal.fire();
      }
    })();
    this.inflight.set(key, task);
  }
}
