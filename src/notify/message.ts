/**
 * Cinder's notifications on the wire, made from the history: for each
 * transition, the event types machines/notifications.ts names, each with
 * the usage payload Cinder's `volume_utils._usage_from_<kind>` carries,
 * wrapped as oslo.messaging 2.0 sends a notification:
 *
 *     {"oslo.version": "2.0",
 *      "oslo.message": "{\"message_id\": …, \"publisher_id\": \"volume.<host>\",
 *                        \"event_type\": \"volume.create.end\", \"priority\": \"INFO\",
 *                        \"payload\": {…}, \"timestamp\": \"2026-12-07 01:16:07.123456\",
 *                        \"_unique_id\": …, \"_context_request_id\": …}"}
 *
 * `message_id` (and oslo's `_unique_id`, which its listener drops repeats
 * by) is derived from the transition and the event type, so the copy a
 * relay sends again after a crash has the same one. `timestamp` is when the
 * transition happened, not when it was sent. The size is the one the
 * transition left (the history records it); the other fields are read when
 * the notification is made.
 */
import { createHash } from 'node:crypto';
import type { StateTransitionRow } from '../../db/schema.ts';
import type { AttachmentUsageRow, BackupUsageRow, GroupUsageRow, SnapshotUsageRow, VolumeUsageRow } from '../../db/notify.ts';
import { isResourceType, MODELS } from '../../machines/index.ts';
import { NOTIFICATIONS, notificationRule, type Publisher } from '../../machines/notifications.ts';

export interface Notification {
  message_id: string;
  publisher_id: string;
  event_type: string;
  priority: 'INFO' | 'ERROR';
  payload: Record<string, unknown>;
  timestamp: string;
  /** oslo's request context, flattened as `_context_<key>` */
  context: Record<string, unknown>;
}

/** The rows payloads are made of, by id. */
export interface UsageRows {
  volumes: Map<string, VolumeUsageRow>;
  snapshots: Map<string, SnapshotUsageRow>;
  attachments: Map<string, AttachmentUsageRow>;
  backups: Map<string, BackupUsageRow>;
  groups: Map<string, GroupUsageRow>;
  groupSnapshots: Map<string, GroupUsageRow>;
}

/** A stable UUID (version 5 layout) for a name: the same transition gives the same message id, however often sent. */
export function stableUuid(name: string): string {
  const h = createHash('sha1').update(`volstate-notification:${name}`).digest();
  h[6] = (h[6]! & 0x0f) | 0x50;
  h[8] = (h[8]! & 0x3f) | 0x80;
  const x = h.subarray(0, 16).toString('hex');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

/** oslo's timestamp: `str(datetime.utcnow())`, `2026-12-07 01:16:07.123456`. */
export function osloTimestamp(d: Date): string {
  return `${d.toISOString().slice(0, 19).replace('T', ' ')}.${String(d.getUTCMilliseconds() * 1000).padStart(6, '0')}`;
}

/** Python's `datetime.isoformat()` of an aware UTC datetime: `2026-12-07T01:16:07.123000+00:00`. */
const iso = (d: Date | null | undefined) =>
  d ? `${d.toISOString().slice(0, 19)}.${String(d.getUTCMilliseconds() * 1000).padStart(6, '0')}+00:00` : '';

/** Which rows a batch of transitions needs read for its payloads. */
export function neededRows(transitions: StateTransitionRow[]): Record<Publisher | 'attachment', string[]> {
  const need: Record<Publisher | 'attachment', Set<string>> = {
    volume: new Set(),
    snapshot: new Set(),
    attachment: new Set(),
    backup: new Set(),
    group: new Set(),
    group_snapshot: new Set(),
  };
  for (const t of transitions) if (isResourceType(t.resource_type) && sends(t)) need[t.resource_type].add(t.resource_id);
  return Object.fromEntries(Object.entries(need).map(([k, v]) => [k, [...v]])) as Record<Publisher | 'attachment', string[]>;
}

function sends(t: StateTransitionRow): boolean {
  return notificationsOf(t).length > 0;
}

/** The event types and priority a transition sends (none for most). */
export function notificationsOf(t: Pick<StateTransitionRow, 'resource_type' | 'from_state' | 'to_state' | 'event'>): {
  types: readonly string[];
  priority: 'INFO' | 'ERROR';
}[] {
  if (!isResourceType(t.resource_type)) return [];
  const ix = MODELS[t.resource_type].index;
  const rule = notificationRule(t.resource_type, {
    fromStatus: t.from_state === null ? null : ix.statusOf(t.from_state),
    toStatus: ix.statusOf(t.to_state),
    event: t.event,
  });
  return rule ? [{ types: rule.sends, priority: rule.priority ?? 'INFO' }] : [];
}

/** The actor of a client's transition is `user:project`; a worker's says which worker. */
function contextOf(t: StateTransitionRow): Record<string, unknown> {
  const [user, project] = t.actor.startsWith('worker:') ? [null, null] : t.actor.split(':');
  return {
    request_id: t.request_id ?? null,
    user_id: user ?? null,
    project_id: project ?? null,
    user: user ?? null,
    tenant: project ?? null,
  };
}

/** Cinder's usage payload of the resource a transition moved, with the status and size the transition left. */
function payloadOf(
  t: StateTransitionRow,
  status: string,
  rows: UsageRows,
): { publisher: Publisher; payload: Record<string, unknown> } | undefined {
  const id = t.resource_id;
  switch (t.resource_type) {
    case 'volume': {
      const v = rows.volumes.get(id);
      return v && { publisher: 'volume', payload: volumePayload(v, status, t.size ?? v.size) };
    }
    case 'attachment': {
      const a = rows.attachments.get(id);
      const v = a && rows.volumes.get(a.volume_id);
      if (!a || !v) return undefined;
      // The attachment's own status is no volume status: the payload says the volume's, as Cinder's does.
      const volumeStatus = status === 'attached' || status === 'detaching' ? 'in-use' : status === 'detached' ? 'available' : 'attaching';
      return {
        publisher: 'volume',
        payload: {
          ...volumePayload(v, volumeStatus, v.size),
          attachment_id: a.id,
          instance_uuid: a.instance_uuid,
          attached_host: a.host_name,
          mountpoint: a.mountpoint,
        },
      };
    }
    case 'snapshot': {
      const n = rows.snapshots.get(id);
      return n && { publisher: 'snapshot', payload: snapshotPayload(n, status, t.size ?? 0) };
    }
    case 'backup': {
      const b = rows.backups.get(id);
      return (
        b && {
          publisher: 'backup',
          payload: {
            tenant_id: b.project_id,
            user_id: b.user_id,
            availability_zone: b.availability_zone,
            backup_id: b.id,
            host: null,
            display_name: b.name ?? '',
            created_at: iso(b.created_at),
            status,
            volume_id: b.volume_id,
            size: t.size ?? 0,
            service_metadata: b.service_metadata,
            service: 'cinder.backup.drivers.posix',
            fail_reason: b.fail_reason,
            parent_id: b.parent_id,
            num_dependent_backups: b.num_dependent_backups,
            snapshot_id: b.snapshot_id,
          },
        }
      );
    }
    case 'group': {
      const g = rows.groups.get(id);
      return (
        g && {
          publisher: 'group',
          payload: {
            tenant_id: g.project_id,
            user_id: g.user_id,
            availability_zone: g.availability_zone,
            group_id: g.id,
            group_type: g.group_type_id,
            name: g.name ?? '',
            created_at: iso(g.created_at),
            status,
          },
        }
      );
    }
    case 'group_snapshot': {
      const s = rows.groupSnapshots.get(id);
      return (
        s && {
          publisher: 'group_snapshot',
          payload: {
            tenant_id: s.project_id,
            user_id: s.user_id,
            group_snapshot_id: s.id,
            name: s.name ?? '',
            group_id: s.group_id,
            group_type: s.group_type_id,
            created_at: iso(s.created_at),
            status,
          },
        }
      );
    }
    default:
      return undefined;
  }
}

export function volumePayload(v: VolumeUsageRow, status: string, size: number): Record<string, unknown> {
  return {
    tenant_id: v.project_id,
    host: v.backend,
    user_id: v.user_id,
    availability_zone: v.availability_zone,
    volume_id: v.id,
    volume_type: v.volume_type_id,
    display_name: v.name ?? '',
    launched_at: iso(v.launched_at ?? v.created_at),
    created_at: iso(v.created_at),
    status,
    snapshot_id: v.snapshot_id,
    size,
    replication_status: null,
    replication_extended_status: null,
    replication_driver_data: null,
    metadata: v.metadata ?? {},
  };
}

export function snapshotPayload(n: SnapshotUsageRow, status: string, volumeSize: number): Record<string, unknown> {
  return {
    tenant_id: n.project_id,
    user_id: n.user_id,
    availability_zone: n.availability_zone,
    volume_id: n.volume_id,
    volume_size: volumeSize,
    snapshot_id: n.id,
    display_name: n.name ?? '',
    created_at: iso(n.created_at),
    status,
    deleted: status === 'deleted' ? 'True' : '',
    metadata: n.metadata && Object.keys(n.metadata).length ? JSON.stringify(n.metadata) : '',
  };
}

/**
 * The notifications of a batch of transitions, in history order. A
 * transition whose resource row is gone (purged) sends what it can: its
 * event with the ids it has.
 */
export function notificationsFor(transitions: StateTransitionRow[], rows: UsageRows, host: string): Notification[] {
  const out: Notification[] = [];
  for (const t of transitions) {
    for (const { types, priority } of notificationsOf(t)) {
      const status = MODELS[t.resource_type as keyof typeof MODELS].index.statusOf(t.to_state);
      const made = payloadOf(t, status, rows) ?? {
        publisher: NOTIFICATIONS[t.resource_type as keyof typeof NOTIFICATIONS].publisher,
        payload: { [`${t.resource_type}_id`]: t.resource_id, status },
      };
      for (const eventType of types) {
        out.push({
          message_id: stableUuid(`${t.resource_type}:${t.resource_id}:${t.version}:${eventType}`),
          publisher_id: `${made.publisher}.${host}`,
          event_type: eventType,
          priority,
          payload: made.payload,
          timestamp: osloTimestamp(t.at),
          context: contextOf(t),
        });
      }
    }
  }
  return out;
}

/** The AMQP body: the oslo.messaging 2.0 envelope around the message. */
export function osloBody(n: Notification): Buffer {
  const message: Record<string, unknown> = {
    message_id: n.message_id,
    publisher_id: n.publisher_id,
    event_type: n.event_type,
    priority: n.priority,
    payload: n.payload,
    timestamp: n.timestamp,
    _unique_id: n.message_id.replaceAll('-', ''),
  };
  for (const [k, v] of Object.entries(n.context)) message[`_context_${k}`] = v;
  return Buffer.from(JSON.stringify({ 'oslo.version': '2.0', 'oslo.message': JSON.stringify(message) }));
}
