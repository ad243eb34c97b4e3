/**
 * Which transition sends which of Cinder's notifications. Pure.
 *
 * Cinder tells the rest of the cloud what happened through oslo.messaging
 * notifications (`volume.create.start` … `.end`, `snapshot.delete.end`, …);
 * volstate sends them from the history (src/notify/), one or more per
 * transition as this table says. A rule matches a transition by the
 * Cinder status it leaves (`from`; `null` is the creation), the status it
 * enters (`to`) and, where the statuses alone do not tell, the event; the
 * first rule of the resource's list that matches decides, and a transition
 * no rule matches sends nothing (a reader taken, a step between two
 * sub-states of one status). An administrator's reset of the status is no
 * operation and sends nothing, as in Cinder.
 *
 * The names are Cinder's: `<publisher>.<action>.<start|end>`, and `.error`
 * (at ERROR priority) where an operation failed. The table in
 * docs/notifications.md and on /diagrams is generated from this one
 * (src/diagrams.ts), and test/machines/notifications.test.ts checks every
 * rule against the machines: each names statuses and events its machine
 * has, and matches at least one of its edges.
 */
import type { ResourceType } from './index.ts';

/** Whose usage payload a notification carries (Cinder's `_usage_from_<kind>`), and its publisher id's prefix. */
export type Publisher = 'volume' | 'snapshot' | 'backup' | 'group' | 'group_snapshot';

export interface NotificationRule {
  /** the status the transition leaves; null: the resource's creation; absent: any */
  from?: string | null;
  /** the status the transition enters; absent: any */
  to?: string;
  /** the machine event, where the statuses do not tell the operation */
  event?: string;
  /** the event types sent, in order */
  sends: readonly string[];
  /** INFO (default) or ERROR: oslo's priority, and the topic's suffix (`notifications.error`) */
  priority?: 'INFO' | 'ERROR';
}

export interface ResourceNotifications {
  publisher: Publisher;
  rules: readonly NotificationRule[];
}

/** An operation that starts, ends, or fails: its three rules. */
function operation(
  publisher: Publisher,
  action: string,
  at: { from?: string | null; busy: string; done: readonly string[]; failed?: readonly string[]; event?: string },
): NotificationRule[] {
  const name = `${publisher}.${action}`;
  return [
    { ...(at.from === undefined ? {} : { from: at.from }), to: at.busy, sends: [`${name}.start`] },
    ...at.done.map((to) => ({ from: at.busy, to, ...(at.event ? { event: at.event } : {}), sends: [`${name}.end`] })),
    ...(at.failed ?? []).map((to) => ({ from: at.busy, to, sends: [`${name}.error`], priority: 'ERROR' as const })),
  ];
}

export const NOTIFICATIONS: Readonly<Record<ResourceType, ResourceNotifications>> = {
  volume: {
    publisher: 'volume',
    rules: [
      ...operation('volume', 'create', { from: null, busy: 'creating', done: ['available'], failed: ['error'] }),
      ...operation('volume', 'delete', { busy: 'deleting', done: ['deleted'], failed: ['error_deleting'] }),
      ...operation('volume', 'resize', { busy: 'extending', done: ['available', 'in-use'], failed: ['error_extending'] }),
      ...operation('volume', 'revert', { busy: 'reverting', done: ['available'], failed: ['error'] }),
      // A retype that fails leaves the volume as it was (its old type): Cinder sends nothing then.
      { from: 'retyping', event: 'RETYPED', sends: ['volume.retype'] },
    ],
  },
  snapshot: {
    publisher: 'snapshot',
    rules: [
      ...operation('snapshot', 'create', { from: null, busy: 'creating', done: ['available'], failed: ['error'] }),
      ...operation('snapshot', 'delete', { busy: 'deleting', done: ['deleted'], failed: ['error_deleting'] }),
    ],
  },
  // Cinder sends an attachment's notifications about its volume (`volume.attach.*`, `volume.detach.*`).
  attachment: {
    publisher: 'volume',
    rules: [
      { from: 'reserved', to: 'attaching', sends: ['volume.attach.start'] },
      { from: 'reserved', to: 'attached', sends: ['volume.attach.start', 'volume.attach.end'] },
      { from: 'attaching', to: 'attached', sends: ['volume.attach.end'] },
      { from: 'reserved', to: 'error_attaching', sends: ['volume.attach.error'], priority: 'ERROR' },
      // An attachment removed while it was being attached: its volume is detached from what began.
      { from: 'attaching', to: 'detached', sends: ['volume.detach.start', 'volume.detach.end'] },
      { from: 'attached', to: 'detaching', sends: ['volume.detach.start'] },
      { from: 'attached', to: 'detached', sends: ['volume.detach.start', 'volume.detach.end'] },
      { from: 'detaching', to: 'detached', sends: ['volume.detach.end'] },
      { from: 'detaching', to: 'error_detaching', sends: ['volume.detach.error'], priority: 'ERROR' },
      // os-roll_detaching: the compute host could not detach, and the volume stays attached.
      { from: 'detaching', to: 'attached', sends: ['volume.detach.error'], priority: 'ERROR' },
    ],
  },
  backup: {
    publisher: 'backup',
    rules: [
      ...operation('backup', 'create', { from: null, busy: 'creating', done: ['available'], failed: ['error'] }),
      ...operation('backup', 'delete', { busy: 'deleting', done: ['deleted'], failed: ['error', 'error_deleting'] }),
      ...operation('backup', 'restore', { from: 'available', busy: 'restoring', done: ['available'] }),
    ],
  },
  group: {
    publisher: 'group',
    rules: [
      ...operation('group', 'create', { from: null, busy: 'creating', done: ['available'], failed: ['error'] }),
      ...operation('group', 'delete', { busy: 'deleting', done: ['deleted'], failed: ['error_deleting'] }),
    ],
  },
  group_snapshot: {
    publisher: 'group_snapshot',
    rules: [
      ...operation('group_snapshot', 'create', { from: null, busy: 'creating', done: ['available'], failed: ['error'] }),
      ...operation('group_snapshot', 'delete', { busy: 'deleting', done: ['deleted'], failed: ['error_deleting'] }),
    ],
  },
};

/** Events that change a status without an operation: they send nothing. */
export const NOT_OPERATIONS: ReadonlySet<string> = new Set(['RESET_STATUS']);

/** The rule a transition matches (statuses, not machine states), or undefined: it sends nothing. */
export function notificationRule(
  type: ResourceType,
  t: { fromStatus: string | null; toStatus: string; event: string },
): NotificationRule | undefined {
  return NOTIFICATIONS[type].rules.find(
    (r) =>
      (r.from === undefined || r.from === t.fromStatus) &&
      (r.to === undefined || r.to === t.toStatus) &&
      (r.event === undefined || r.event === t.event) &&
      // A status kept (a step inside one status) is no operation starting or ending.
      t.fromStatus !== t.toStatus &&
      !NOT_OPERATIONS.has(t.event),
  );
}
