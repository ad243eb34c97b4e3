/**
 * Retention: what deleted resources leave behind, removed once older than
 * the retention, in small batches that hold their locks briefly.
 *
 * - Data rows (attachments, snapshots, volumes) whose `deleted_at` is
 *   before the cutoff go with their state rows, a batch per transaction,
 *   children before parents (a volume is deleted only after its snapshots
 *   and attachments ended, so theirs are older). `SKIP LOCKED`: purges on
 *   several nodes share the work instead of waiting on each other.
 * - The history is partitioned by month (migration 0013): a month whose
 *   partition ends before the cutoff is dropped whole; what the default
 *   partition holds before the cutoff is deleted in batches. History is
 *   kept at least the retention and at most a month longer. Dropping a
 *   month drops that month's transitions of live resources too: their
 *   history then starts later (the checker accepts a history that starts
 *   after its creation, db/../src/check/history.ts).
 *
 * Partitions are made ahead (this month and the next two) at every
 * migration and by every worker's retention round, so the default
 * partition stays empty in a running deployment.
 */
import type postgres from 'postgres';
import { SQLSTATE, sqlState } from './sqlstate.ts';

type Exec = postgres.Sql;

const MONTH_PARTITION = /^state_transitions_(\d{4})_(\d{2})$/;

/** First instant (UTC) of the month `offset` months after `d`'s. */
function monthStart(d: Date, offset = 0): Date {
  return new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + offset, 1));
}

const partitionName = (m: Date) => `state_transitions_${m.getUTCFullYear()}_${String(m.getUTCMonth() + 1).padStart(2, '0')}`;

/** Make the history partitions of this month and the next `ahead` months; those that exist are left alone. */
export async function ensureHistoryPartitions(sql: Exec, now = new Date(), ahead = 2): Promise<string[]> {
  const made: string[] = [];
  for (let i = 0; i <= ahead; i++) {
    const from = monthStart(now, i);
    const to = monthStart(now, i + 1);
    const name = partitionName(from);
    try {
      const [exists] = await sql`SELECT 1 AS one FROM pg_class WHERE relname = ${name}`;
      if (exists) continue;
      await sql.unsafe(
        `CREATE TABLE IF NOT EXISTS "${name}" PARTITION OF state_transitions FOR VALUES FROM ('${from.toISOString()}') TO ('${to.toISOString()}')`,
      );
      made.push(name);
    } catch (err) {
      // Made meanwhile by another node, or the default partition already holds rows of that month
      // (nodes down for months): the rows stay where they are, and purge still reaches them.
      const state = sqlState(err);
      if (state === SQLSTATE.DUPLICATE_TABLE || state === SQLSTATE.CHECK_VIOLATION || state === SQLSTATE.UNIQUE_VIOLATION) continue;
      throw err;
    }
  }
  return made;
}

export interface PurgeReport {
  /** data rows removed (with their state rows), by table */
  rows: Record<'attachments' | 'snapshots' | 'volumes' | 'backups' | 'group_snapshots' | 'groups' | 'messages', number>;
  /** monthly history partitions dropped */
  partitions: string[];
  /** history rows deleted from the default partition */
  historyRows: number;
}

/** A volume or group some row still refers to waits for the next round (a child skipped as locked this one). */
const KEEP_PARENTS: Partial<Record<string, string>> = {
  volumes: `
             AND NOT EXISTS (SELECT 1 FROM snapshots c WHERE c.volume_id = volumes.id)
             AND NOT EXISTS (SELECT 1 FROM attachments c WHERE c.volume_id = volumes.id)`,
  groups: `
             AND NOT EXISTS (SELECT 1 FROM group_snapshots c WHERE c.group_id = groups.id)`,
};

const TABLES = [
  { table: 'attachments', type: 'attachment' },
  { table: 'backups', type: 'backup' },
  { table: 'snapshots', type: 'snapshot' },
  { table: 'volumes', type: 'volume' },
  { table: 'group_snapshots', type: 'group_snapshot' },
  { table: 'groups', type: 'group' },
] as const;

/** Remove what was deleted before `before`, `batch` rows per transaction. */
export async function purge(sql: Exec, before: Date, batch = 1000): Promise<PurgeReport> {
  const report: PurgeReport = {
    rows: { attachments: 0, snapshots: 0, volumes: 0, backups: 0, group_snapshots: 0, groups: 0, messages: 0 },
    partitions: [],
    historyRows: 0,
  };
  // First: from now on, what predates the cutoff may be missing (the history checker reads this).
  await sql`
    INSERT INTO history_horizon (id, history_before) VALUES (true, ${before})
    ON CONFLICT (id) DO UPDATE SET history_before = GREATEST(history_horizon.history_before, EXCLUDED.history_before)`;
  for (const { table, type } of TABLES) {
    for (let deadlocks = 0; ;) {
      // One statement: a batch picked, its state rows locked (skipping those another transaction
      // holds: a request on that resource is still under way), those state rows and the batch's
      // dependants removed, then the data rows. State rows first, then data rows: the order every
      // other transaction takes them in (a CAS, then its data), so no cycle can form.
      let rows: postgres.Row[];
      try {
        rows = await sql.unsafe(
          `WITH candidates AS (
             SELECT id FROM ${table} WHERE deleted_at < $1${KEEP_PARENTS[table] ?? ''} ORDER BY deleted_at LIMIT $2
           ), locked AS (
             SELECT s.resource_id AS id FROM resource_states s JOIN candidates c ON s.resource_type = $3 AND s.resource_id = c.id
             FOR UPDATE OF s SKIP LOCKED
           ), states AS (
             DELETE FROM resource_states s USING locked WHERE s.resource_type = $3 AND s.resource_id = locked.id
           )${table === 'volumes' ? ', offers AS (DELETE FROM transfers t USING locked WHERE t.volume_id = locked.id)' : ''}
           DELETE FROM ${table} d USING locked WHERE d.id = locked.id RETURNING d.id`,
          [before, batch, type],
        );
      } catch (err) {
        // A lock order nobody foresaw: give up this batch, never the caller's request (retried a few times).
        if (sqlState(err) === SQLSTATE.DEADLOCK_DETECTED && ++deadlocks < 5) continue;
        throw err;
      }
      report.rows[table] += rows.length;
      if (rows.length < batch) break;
    }
  }
  for (;;) {
    const rows = await sql`
      DELETE FROM messages WHERE id IN (SELECT id FROM messages WHERE expires_at < ${before} LIMIT ${batch} FOR UPDATE SKIP LOCKED) RETURNING id`;
    report.rows.messages += rows.length;
    if (rows.length < batch) break;
  }
  // Whole months that ended before the cutoff.
  const partitions = await sql<{ name: string }[]>`
    SELECT c.relname AS name FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
    WHERE p.relname = 'state_transitions' ORDER BY c.relname`;
  for (const { name } of partitions) {
    const m = MONTH_PARTITION.exec(name);
    if (!m) continue;
    const end = new Date(Date.UTC(Number(m[1]), Number(m[2]), 1));
    if (end.getTime() > before.getTime()) continue;
    await sql.unsafe(`DROP TABLE IF EXISTS "${name}"`);
    report.partitions.push(name);
  }
  for (;;) {
    const rows = await sql`
      DELETE FROM state_transitions_default WHERE ctid = ANY(ARRAY(SELECT ctid FROM state_transitions_default WHERE at < ${before} LIMIT ${batch})) RETURNING id`;
    report.historyRows += rows.length;
    if (rows.length < batch) break;
  }
  return report;
}
