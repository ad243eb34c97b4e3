/**
 * The usage audit (Cinder's `cinder-volume-usage-audit`, `volstate audit`):
 * a `volume.exists` for every volume and a `snapshot.exists` for every
 * snapshot that existed during an audit period — created before its end,
 * not deleted before its beginning — so metering can bill what existed
 * even where it saw no other event. The payload is the resource's usage
 * payload with `audit_period_beginning` and `audit_period_ending`. Each
 * message id is derived from the resource and the period, so running the
 * audit again for a period sends the same ids: a consumer drops repeats.
 * Published with confirms, a batch at a time; run it from cron as Cinder's
 * is (its default period is the last whole month).
 */
import type { Sql } from '../../db/connect.ts';
import { snapshotsExisting, volumesExisting } from '../../db/notify.ts';
import { MODELS } from '../../machines/index.ts';
import type { NotifyConfig } from './config.ts';
import { osloTimestamp, snapshotPayload, stableUuid, volumePayload, type Notification } from './message.ts';
import { AmqpPublisher } from './publisher.ts';

export interface AuditPeriod {
  begin: Date;
  end: Date;
}

/** The last whole month before `now` (Cinder's `volume_usage_audit_period = month`). */
export function lastMonth(now = new Date()): AuditPeriod {
  const end = new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), 1));
  const begin = new Date(Date.UTC(end.getUTCFullYear(), end.getUTCMonth() - 1, 1));
  return { begin, end };
}

/** Python's `str(datetime)` of a whole second: `2026-11-01 00:00:00`. */
const pyTime = (d: Date) => d.toISOString().slice(0, 19).replace('T', ' ');

export async function auditUsage(
  sql: Sql,
  config: NotifyConfig,
  period: AuditPeriod,
  batch = 500,
): Promise<{ volumes: number; snapshots: number }> {
  const publisher = new AmqpPublisher(config);
  const extra = { audit_period_beginning: pyTime(period.begin), audit_period_ending: pyTime(period.end) };
  const message = (type: string, id: string, eventType: string, publisherKind: string, payload: Record<string, unknown>): Notification => ({
    message_id: stableUuid(`${type}:${id}:exists:${period.begin.toISOString()}:${period.end.toISOString()}`),
    publisher_id: `${publisherKind}.${config.host}`,
    event_type: eventType,
    priority: 'INFO',
    payload: { ...payload, ...extra },
    timestamp: osloTimestamp(new Date()),
    context: { request_id: null, user_id: null, project_id: null },
  });
  // Every row of `fetch`, a batch at a time in id order, published as `toMessage` says; how many.
  const each = async <R extends { id: string }>(
    fetch: (after: string) => Promise<R[]>,
    toMessage: (row: R) => Notification,
  ): Promise<number> => {
    let count = 0;
    for (let after = '00000000-0000-0000-0000-000000000000'; ;) {
      const rows = await fetch(after);
      if (rows.length === 0) return count;
      await publisher.publish(rows.map(toMessage));
      count += rows.length;
      after = rows.at(-1)!.id;
    }
  };
  try {
    const volumes = await each(
      (after) => volumesExisting(sql, period.begin, period.end, after, batch),
      (v) => message('volume', v.id, 'volume.exists', 'volume', volumePayload(v, MODELS.volume.index.statusOf(v.state), v.size)),
    );
    const snapshots = await each(
      (after) => snapshotsExisting(sql, period.begin, period.end, after, batch),
      (n) => message('snapshot', n.id, 'snapshot.exists', 'snapshot', snapshotPayload(n, MODELS.snapshot.index.statusOf(n.state), n.size)),
    );
    return { volumes, snapshots };
  } finally {
    await publisher.disconnect();
  }
}
