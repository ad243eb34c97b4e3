/**
 * The one way to run a transaction that changes more than one row (a
 * snapshot and its volume, an attachment and its volume, a volume and its
 * snapshots, a holder and the sources of its leases). Each row changes by
 * its own CAS, so the transaction never needs a stronger isolation; what
 * it can do is deadlock: two transactions taking the same rows' locks in
 * opposite orders (a cascade delete locks the volume then its snapshots, a
 * snapshot's completion the snapshot then its volume). A storm of mixed
 * requests found exactly that, as a 500 from a snapshot create.
 *
 * So every such transaction first locks every `resource_states` row it
 * will change, in ONE statement, in one global order — by (resource_type,
 * resource_id) — and only then runs its CASes, which find the rows already
 * theirs. Two transactions that lock in the same order cannot wait on each
 * other in a cycle. A row the lock set could not name in advance (a
 * snapshot that appeared after the lock) may still meet another order, so
 * a deadlock or serialization failure is retried from the start, a few
 * times, as the last resort.
 *
 * The lock is `FOR NO KEY UPDATE`, what the CAS's own UPDATE takes: it does
 * not block the key-share locks that inserts of history and lease rows
 * take on the rows they reference.
 *
 * A lint rule (eslint.config.js) keeps `.begin(` out of every other file.
 */
import type postgres from 'postgres';
import { SQLSTATE, sqlState } from './sqlstate.ts';

const RETRYABLE = new Set<string>([SQLSTATE.DEADLOCK_DETECTED, SQLSTATE.SERIALIZATION_FAILURE]);

/** What runs once each open transaction of `transaction()` has committed (an attempt that fails drops its own). */
const committed = new WeakMap<object, (() => void)[]>();

/**
 * Run `fn` once what `exec` sent is committed: at once on a connection
 * outside a transaction (each statement commits before its answer comes),
 * after the commit in a transaction of `transaction()`, never if that
 * transaction rolls back. Returns false, running nothing, for a
 * transaction it does not know (none is opened elsewhere: the lint rule).
 */
export function afterCommit(exec: postgres.Sql | postgres.TransactionSql, fn: () => void): boolean {
  if (!commitVisible(exec)) return false;
  const hooks = committed.get(exec);
  if (hooks) hooks.push(fn);
  else fn();
  return true;
}

/** Whether `afterCommit(exec, …)` would run what it is given (asked before sending, so a caller can choose). */
export function commitVisible(exec: postgres.Sql | postgres.TransactionSql): boolean {
  return committed.has(exec) || 'begin' in exec;
}

export interface RowRef {
  readonly type: string;
  readonly id: string;
}

/** The rows a transaction will change, named directly or by relation; all locked in one order before it runs. */
export interface LockSet {
  /** these rows */
  rows?: readonly RowRef[];
  /** the snapshots of these volumes */
  snapshotsOf?: readonly string[];
  /** the attachments of these volumes */
  attachmentsOf?: readonly string[];
  /** the sources these holders hold leases on (a transition of the holder may give them back) */
  leaseSourcesOf?: readonly RowRef[];
  /** the live member volumes of these groups */
  membersOf?: readonly string[];
}

/** Lock the rows of `set` in (resource_type, resource_id) order. */
export async function lockInOrder(tx: postgres.TransactionSql, set: LockSet): Promise<void> {
  const rows = set.rows ?? [];
  const holders = set.leaseSourcesOf ?? [];
  // Nothing existing to lock (a create that inserts only new rows): no statement.
  if (rows.length === 0 && holders.length === 0 && !set.snapshotsOf?.length && !set.attachmentsOf?.length && !set.membersOf?.length) return;
  // The sort feeds the lock: PostgreSQL locks the rows as the ORDER BY emits them.
  await tx`
    SELECT 1 FROM resource_states s
    WHERE (s.resource_type, s.resource_id) IN (
      SELECT * FROM unnest(${rows.map((r) => r.type)}::text[], ${rows.map((r) => r.id)}::uuid[])
      UNION ALL
      SELECT 'snapshot', n.id FROM snapshots n WHERE n.volume_id = ANY(${set.snapshotsOf ?? []}::uuid[])
      UNION ALL
      SELECT 'attachment', a.id FROM attachments a WHERE a.volume_id = ANY(${set.attachmentsOf ?? []}::uuid[])
      UNION ALL
      SELECT 'volume', v.id FROM volumes v WHERE v.group_id = ANY(${set.membersOf ?? []}::uuid[]) AND v.deleted_at IS NULL
      UNION ALL
      SELECT l.source_type, l.source_id FROM leases l
      WHERE (l.holder_type, l.holder_id) IN (SELECT * FROM unnest(${holders.map((h) => h.type)}::text[], ${holders.map((h) => h.id)}::uuid[])))
    ORDER BY s.resource_type, s.resource_id
    FOR NO KEY UPDATE OF s`;
}

/**
 * Run `fn` in a transaction that has first locked the rows of `lock` in
 * the global order; retried from the start on a deadlock or serialization
 * failure, up to `attempts` times.
 */
export async function transaction<T>(
  sql: postgres.Sql,
  lock: LockSet,
  fn: (tx: postgres.TransactionSql) => Promise<T>,
  attempts = 5,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    const hooks: (() => void)[] = [];
    let value: T;
    try {
      // eslint-disable-next-line no-restricted-syntax -- the one place a multi-row transaction begins
      value = (await sql.begin(async (tx) => {
        committed.set(tx, hooks);
        // The lock and `fn`'s first statements go together (postgres.js pipelines what is sent on
        // one session without waiting; PostgreSQL runs it in order, so the rows are locked before
        // `fn`'s first statement runs): a round trip less. If the lock fails (a deadlock), the
        // transaction is aborted and what `fn` sent after it fails only for that (25P02): the lock's
        // error is the one to answer, and to retry on (postgres.js also puts a transaction's first
        // error in place of a later 25P02; this does not lean on it).
        const locking = lockInOrder(tx, lock);
        const running = fn(tx);
        const [locked, ran] = await Promise.allSettled([locking, running]);
        if (locked.status === 'rejected') throw locked.reason;
        if (ran.status === 'rejected') throw ran.reason;
        return ran.value;
      })) as T;
    } catch (err) {
      const state = sqlState(err);
      if (!state || !RETRYABLE.has(state) || attempt >= attempts) throw err;
      await new Promise((r) => setTimeout(r, Math.random() * 10 * attempt));
      continue;
    }
    for (const hook of hooks) hook();
    return value;
  }
}
