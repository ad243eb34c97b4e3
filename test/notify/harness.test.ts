/**
 * The harness with notifications (`--notify`): nodes SIGKILLed and the
 * broker restarted while clients work; the consumer received every
 * transition's notification, in order per resource (the checker finds 0
 * violations). And the notification checker catches what it checks: a
 * notification missing, two of a resource out of order, one that no
 * transition sends.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type Sql } from '../../db/connect.ts';
import type { StateTransitionRow } from '../../db/schema.ts';
import { checkNotifications, type ReceivedNotification } from '../../src/check/notifications.ts';
import { runHarness } from '../../src/harness/run.ts';
import { notificationsOf, stableUuid } from '../../src/notify/message.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { RABBIT_PACKAGES, RABBIT_START_MS } from '../helpers/rabbit.ts';
import { ensureDebianPackages } from '../helpers/keystone.ts';

let sql: Sql | undefined;
afterAll(async () => {
  await sql?.end({ timeout: 5 });
});

/** What the history says a perfect consumer receives, in history order. */
async function perfect(db: Sql): Promise<ReceivedNotification[]> {
  const rows = await db<StateTransitionRow[]>`
    SELECT resource_type, resource_id::text, from_state, event, to_state, version FROM state_transitions ORDER BY id`;
  return rows.flatMap((t) =>
    notificationsOf(t).flatMap(({ types }) =>
      types.map((type) => ({
        message_id: stableUuid(`${t.resource_type}:${t.resource_id}:${t.version}:${type}`),
        event_type: type,
        resource: `${t.resource_type}:${t.resource_id}`,
      })),
    ),
  );
}

describe('the harness with notifications', () => {
  it(
    'kills a node every 3 s and restarts RabbitMQ every 4 s: every transition of the run is notified, in order per resource, 0 violations',
    async () => {
      ensureDebianPackages(RABBIT_PACKAGES);
      const databaseUrl = await createTestDatabase();
      const summary = await runHarness({
        scenario: 'mixed',
        nodes: 2,
        clients: 8,
        ops: 300,
        minFaultsOf: { kill: 1, 'rabbit-restart': 2 },
        seed: 23,
        faults: { killEveryMs: 3000, rabbitRestartEveryMs: 4000 },
        databaseUrl,
        token: 'admin:harness',
        timeoutMs: 2000,
        notify: true,
        // Only what the harness says about the notifications (a relay that stops making progress names itself).
        progress: (line) => {
          if (line.startsWith('notifications')) console.error(line);
        },
      });
      console.log(`notifications: ${JSON.stringify(summary.notifications)}; faults ${summary.faults.map((f) => f.kind).join(' ')}`);
      expect(summary.checkText).toMatch(/: 0 violations$/);
      expect(summary.violations).toBe(0);
      expect(summary.faults.filter((f) => f.kind === 'rabbit-restart').length).toBeGreaterThanOrEqual(2);
      expect(summary.notifications!.missing).toBe(0);
      expect(summary.notifications!.expected).toBeGreaterThan(200);
      expect(summary.outcomes.filter((o) => o.status >= 500)).toEqual([]);

      // The checker catches what it checks, on this run's history.
      sql = connect(databaseUrl, { max: 2 });
      const all = await perfect(sql);
      expect((await checkNotifications(sql, all)).violations).toEqual([]);
      expect((await checkNotifications(sql, [...all, all[0]!])).violations).toEqual([]); // a repeat, same id: allowed
      const dropped = all.filter((_, i) => i !== 7);
      expect((await checkNotifications(sql, dropped)).violations.map((v) => v.kind)).toEqual(['notification-missing']);
      // Two of one resource swapped (its create start and end).
      const r = all[0]!.resource;
      const [i, j] = all.flatMap((n, k) => (n.resource === r ? [k] : [])).slice(0, 2) as [number, number];
      const swapped = [...all];
      [swapped[i], swapped[j]] = [swapped[j]!, swapped[i]!];
      expect((await checkNotifications(sql, swapped)).violations.map((v) => v.kind)).toEqual(['notification-order']);
      const foreign = [...all, { message_id: stableUuid('volume:nothing:1:volume.create.start'), event_type: 'volume.create.start' }];
      expect((await checkNotifications(sql, foreign)).violations.map((v) => v.kind)).toEqual(['notification-unexpected']);
    },
    RABBIT_START_MS + 300_000,
  );
});
