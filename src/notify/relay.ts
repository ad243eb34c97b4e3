/**
 * The history is the outbox (DESIGN.md, decision 14): a relay on the
 * workers reads the transitions after its stored position, publishes
 * Cinder's notifications for them to RabbitMQ on a confirm channel, and
 * moves the position only after the broker confirmed every message of the
 * batch. So nothing acknowledged to a client is missing downstream; a
 * node's or the broker's crash delays notifications and loses none; what a
 * crash between the confirm and the position's move sends twice carries the
 * same `message_id` (src/notify/message.ts).
 *
 * One relay publishes at a time: the one holding the lease in
 * `notification_relay` (db/notify.ts), renewed every round and taken over
 * by any node once it lapses (its holder dead or cut off). A holder that
 * was cut off and comes back may publish a batch the new holder also
 * publishes: both send the same transitions in the same order, so a
 * consumer that drops repeated message ids sees each resource's
 * notifications once and in order.
 *
 * The relay is off the request path: the API never waits for it, and a
 * broker that is down only grows the lag (`volstate_notify_lag`).
 */
import type { Sql } from '../../db/connect.ts';
import { STATE_CHANNEL, WORK_CHANNEL } from '../../db/cas.ts';
import { HistoryGaps } from '../../db/events.ts';
import {
  advance,
  attachmentUsageRows,
  backupUsageRows,
  groupSnapshotUsageRows,
  groupUsageRows,
  releaseLease,
  snapshotUsageRows,
  takeLease,
  volumeUsageRows,
} from '../../db/notify.ts';
import type { NotifyConfig } from './config.ts';
import { neededRows, notificationsFor, type UsageRows } from './message.ts';
import { AmqpPublisher } from './publisher.ts';

export interface RelayOptions {
  sql: Sql;
  config: NotifyConfig;
  /** who holds the lease: the worker's id */
  holder: string;
  leaseMs?: number;
  batch?: number;
  pollMs?: number;
  log?: (msg: string, fields?: Record<string, unknown>) => void;
}

export class NotificationRelay {
  /** notifications the broker confirmed (this node) */
  published = 0;
  /** failed rounds: broker unreachable, a channel closed under a batch, the database gone (this node) */
  errors = 0;
  /** whether this node holds the lease now */
  leading = false;
  private readonly gaps = new HistoryGaps();
  private readonly publisher: AmqpPublisher;
  private stopped = false;
  private running: Promise<void> | undefined;
  private wake: (() => void) | undefined;
  private unlisten: (() => Promise<void>)[] = [];
  /** where this node's relay has got to, while it leads; and when it renews its lease next (ms, this clock) */
  private position = 0;
  private renewAt = 0;
  private readonly leaseMs: number;
  private readonly batch: number;
  private readonly pollMs: number;

  constructor(private readonly opts: RelayOptions) {
    this.leaseMs = opts.leaseMs ?? 10_000;
    this.batch = opts.batch ?? 500;
    this.pollMs = opts.pollMs ?? 250;
    this.publisher = new AmqpPublisher(opts.config);
  }

  start(): void {
    this.running ??= this.run();
  }

  /** Stop relaying; hand the lease over at once unless `release` is false (what a node that dies leaves: a lease to lapse). */
  async stop({ release = true }: { release?: boolean } = {}): Promise<void> {
    this.stopped = true;
    this.wake?.();
    await this.running;
    for (const u of this.unlisten) await u().catch(() => undefined);
    if (this.leading && release) await releaseLease(this.opts.sql, this.opts.holder).catch(() => undefined);
    await this.publisher.disconnect();
  }

  private log(msg: string, fields?: Record<string, unknown>) {
    this.opts.log?.(msg, fields);
  }

  private async run(): Promise<void> {
    for (const channel of [WORK_CHANNEL, STATE_CHANNEL]) {
      // New transitions wake the relay that leads; the others only try for the lease now and then.
      const l = await this.opts.sql.listen(channel, () => (this.leading ? this.wake?.() : undefined)).catch(() => undefined);
      if (l) this.unlisten.push(() => l.unlisten());
    }
    let failures = 0;
    while (!this.stopped) {
      let pause = this.pollMs;
      let wakeable = true;
      try {
        const more = await this.round();
        failures = 0;
        if (more === 'more') continue;
        if (more === 'follower') pause = this.leaseMs / 2;
      } catch (err) {
        this.errors++;
        failures++;
        this.log('notifications: a round failed; trying again', { err: String(err), failures });
        await this.publisher.disconnect();
        pause = Math.min(5000, 250 * 2 ** Math.min(failures, 5));
        // A back-off that new transitions cut short is none: with the broker down, every NOTIFY of
        // the cloud made a round that read a batch and failed to connect (bench:notify: the API at
        // 0.74 × its throughput while the broker was down).
        wakeable = false;
      }
      await this.sleep(pause, wakeable);
    }
  }

  /** Wait `ms`; a stop ends the wait, and so do new transitions when `wakeable`. */
  private sleep(ms: number, wakeable = true): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.stopped) return resolve();
      const timer = setTimeout(resolve, ms);
      const end = () => {
        clearTimeout(timer);
        resolve();
      };
      this.wake = wakeable ? end : () => (this.stopped ? end() : undefined);
    });
  }

  /** One round: keep the lease, publish the next batch, move the position. */
  private async round(): Promise<'more' | 'idle' | 'follower'> {
    const { sql, holder } = this.opts;
    // The lease is renewed a third of the way through (each advance renews it too), not every round:
    // an idle relay writes its row every few seconds, not four times a second.
    if (!this.leading || Date.now() >= this.renewAt) {
      const lease = await takeLease(sql, holder, this.leaseMs);
      if (!lease) {
        if (this.leading) this.log('notifications: another node relays now');
        this.leading = false;
        return 'follower';
      }
      if (!this.leading) this.log('notifications: this node relays', { position: lease.position });
      this.leading = true;
      this.position = lease.position;
      this.renewAt = Date.now() + this.leaseMs / 3;
    }
    const transitions = await this.gaps.after(sql, this.position, this.batch);
    if (transitions.length === 0) return 'idle';
    const messages = notificationsFor(transitions, await this.usageRows(transitions), this.opts.config.host);
    if (messages.length) await this.publisher.publish(messages);
    const last = transitions.at(-1)!.id;
    if (!(await advance(sql, holder, last, this.leaseMs))) {
      this.leading = false;
      this.log('notifications: the lease lapsed under a batch; another node relays now');
      return 'follower';
    }
    this.position = last;
    this.renewAt = Date.now() + this.leaseMs / 3;
    this.gaps.forget(last);
    this.published += messages.length;
    return transitions.length === this.batch ? 'more' : 'idle';
  }

  private async usageRows(transitions: Parameters<typeof neededRows>[0]): Promise<UsageRows> {
    const { sql } = this.opts;
    const need = neededRows(transitions);
    const [snapshots, attachments, backups, groups, groupSnapshots] = await Promise.all([
      snapshotUsageRows(sql, need.snapshot),
      attachmentUsageRows(sql, need.attachment),
      backupUsageRows(sql, need.backup),
      groupUsageRows(sql, need.group),
      groupSnapshotUsageRows(sql, need.group_snapshot),
    ]);
    const volumeIds = new Set([...need.volume, ...attachments.map((a) => a.volume_id)]);
    const volumes = await volumeUsageRows(sql, [...volumeIds]);
    const byId = <T extends { id: string }>(rows: T[]) => new Map(rows.map((r) => [r.id, r]));
    return {
      volumes: byId(volumes),
      snapshots: byId(snapshots),
      attachments: byId(attachments),
      backups: byId(backups),
      groups: byId(groups),
      groupSnapshots: byId(groupSnapshots),
    };
  }
}
