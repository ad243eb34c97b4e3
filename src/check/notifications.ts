/**
 * The notifications a consumer received, against the history: every
 * transition's notifications (the table machines/notifications.ts names)
 * arrived; the first copies of each resource's arrived in the order of its
 * transitions, within each priority; and a copy that came more than once
 * carries the same message id (so anything received that no transition sends is a
 * violation). At-least-once delivery repeats a message after a crash or a
 * broker restart; it must never lose or reorder one.
 *
 * Within each priority, not across them: oslo.messaging sends INFO and
 * ERROR notifications to two queues (`notifications.info`,
 * `notifications.error`), and a consumer of both gets each queue in order
 * but no order between them — after a broker outage the short error queue
 * is delivered before the info queue's backlog, as it is for Cinder's.
 *
 * The expected message ids are computed here from the transition and the
 * event type, as the relay makes them (src/notify/message.ts), so a relay
 * that skipped a transition, sent one twice under different ids, or sent a
 * resource's out of order is caught.
 */
import type postgres from 'postgres';
import type { StateTransitionRow } from '../../db/schema.ts';
import { notificationsOf, stableUuid } from '../notify/message.ts';
import type { Violation } from './history.ts';

export interface ReceivedNotification {
  message_id: string;
  event_type: string;
  /** `<type>:<id>` when the payload names it */
  resource?: string | undefined;
}

export interface NotificationCheck {
  expected: number;
  received: number;
  duplicates: number;
  violations: Violation[];
}

export async function checkNotifications(sql: postgres.Sql, received: ReceivedNotification[]): Promise<NotificationCheck> {
  /** message id → index of its first copy */
  const first = new Map<string, number>();
  received.forEach((r, i) => {
    if (!first.has(r.message_id)) first.set(r.message_id, i);
  });
  const violations: Violation[] = [];
  const known = new Set<string>();
  let expected = 0;
  let resource = '';
  /** per priority: the index of the last first copy of this resource's, and its name */
  let last = new Map<string, { at: number; name: string }>();
  await sql<StateTransitionRow[]>`
    SELECT resource_type, resource_id::text, from_state, event, to_state, version
    FROM state_transitions ORDER BY resource_type, resource_id, version, id`.cursor(2000, (batch) => {
    for (const t of batch) {
      const key = `${t.resource_type}:${t.resource_id}`;
      if (key !== resource) {
        resource = key;
        last = new Map();
      }
      for (const { types, priority } of notificationsOf(t))
        for (const type of types) {
          expected++;
          const id = stableUuid(`${key}:${t.version}:${type}`);
          known.add(id);
          const at = first.get(id);
          const name = `v${t.version} ${type}`;
          if (at === undefined) {
            violations.push({ kind: 'notification-missing', resource: key, detail: `${name} (${id}) never arrived`, slice: [] });
            continue;
          }
          const before = last.get(priority);
          if (before && at < before.at)
            violations.push({ kind: 'notification-order', resource: key, detail: `${name} arrived before ${before.name}`, slice: [] });
          if (!before || at > before.at) last.set(priority, { at, name });
        }
    }
  });
  for (const [id, at] of first)
    if (!known.has(id))
      violations.push({
        kind: 'notification-unexpected',
        resource: received[at]!.resource ?? `message:${id}`,
        detail: `${received[at]!.event_type} (${id}) is no transition's notification`,
        slice: [],
      });
  return { expected, received: received.length, duplicates: received.length - first.size, violations };
}
