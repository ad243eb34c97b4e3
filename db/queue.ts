/**
 * The state table is the work queue: a row in a state with a worker step
 * (machine meta `step`) and no owner is pending work. There is no separate
 * queue a crash could desynchronise from the state.
 *
 * A worker claims rows by CAS on the owner (`owner IS NULL` → itself),
 * picking with FOR UPDATE SKIP LOCKED so claimers never wait on each
 * other. A claim is not a transition: it does not move the state or bump
 * the version; every step the owner then takes is a transition whose
 * statement checks `owner = <worker>`.
 */
import { MODELS, type ResourceModel } from '../machines/index.ts';
import { guardAtoms } from '../machines/model.ts';
import type { Executor as Exec } from './connect.ts';
import { dataVolumeOf, WORK_CHANNEL } from './cas.ts';

/** SQL literals of names the machines define (no quotes in them), comma-separated. */
export const quoted = (values: readonly string[]) => values.map((v) => `'${v}'`).join(', ');

/**
 * `(resource_type = 'volume' AND state IN (...)) OR ...`: rows in a state
 * with a worker step. Also the predicate of the partial index
 * `resource_states_pending`: the claim query uses the same text, so the
 * planner can prove it implies the index predicate and use the index.
 */
export function stepStatesPredicate(): string {
  return (Object.values(MODELS) as ResourceModel[])
    .filter((m) => m.index.stepStates.length > 0)
    .map((m) => {
      const always = m.index.stepStates.filter((s) => !m.index.meta(s).ready);
      // A state whose step must wait (meta.ready) is pending only once its guard holds.
      const waiting = m.index.stepStates
        .filter((s) => m.index.meta(s).ready)
        .map(
          (s) =>
            `(state = '${s}' AND ${guardAtoms(m.guards, m.index.meta(s).ready!)
              .map((a) => `(${a.guard.sql})`)
              .join(' AND ')})`,
        );
      const states = [...(always.length ? [`state IN (${quoted(always)})`] : []), ...waiting].join(' OR ');
      return `(resource_type = '${m.type}' AND (${states}))`;
    })
    .join(' OR ');
}

const PENDING = `owner IS NULL AND (${stepStatesPredicate()})`;

/** The step states of each type in the backup lane (meta.backupLane), with the guard that must hold, if any. */
function backupLaneStates(): { model: ResourceModel; state: string; guard: string | undefined }[] {
  return (Object.values(MODELS) as ResourceModel[]).flatMap((m) =>
    m.index.stepStates.flatMap((s) => {
      const lane = m.index.meta(s).backupLane;
      return lane === undefined ? [] : [{ model: m, state: s, guard: lane === true ? undefined : lane }];
    }),
  );
}

/** Rows whose step is the backup lane's (see StateMeta.backupLane): what a worker whose lane is full does not claim. */
export function backupLanePredicate(): string {
  return LANE_STATES.map(({ model, state, guard }) => {
    const atoms = guard
      ? guardAtoms(model.guards, guard)
          .map((a) => ` AND (${a.guard.sql})`)
          .join('')
      : '';
    return `(resource_type = '${model.type}' AND state = '${state}'${atoms})`;
  }).join(' OR ');
}

const LANE_STATES = backupLaneStates();
const NOT_BACKUP_LANE = `NOT (${backupLanePredicate()})`;

/** Whether a claimed row's step is the backup lane's (the same rule as backupLanePredicate, on the row). */
export function inBackupLane(row: ClaimedRow): boolean {
  return LANE_STATES.some(
    ({ model, state, guard }) =>
      model.type === row.resource_type &&
      state === row.state &&
      (!guard || guardAtoms(model.guards, guard).every((a) => a.guard.js({ ...row }, { type: '' }))),
  );
}

export interface ClaimedRow {
  resource_type: string;
  resource_id: string;
  state: string;
  version: number;
  size: number;
  readers: number;
  dependents: number;
  operation: Record<string, unknown> | null;
  owner: string;
  previous_state: string | null;
  updated_at: Date;
  /**
   * Read with the claim (or by the statement that kept the row at birth,
   * db/cas.ts KEEPER), for the step's backend call: the volume the row's
   * data lives on (itself, or a snapshot's volume; null without a data row)
   * and that volume's backend (null: the default one). Only the row's owner
   * changes them (the scheduling step), so they hold for the step.
   */
  data_volume_id: string | null;
  backend: string | null;
}

/**
 * Claim up to `limit` pending rows for `worker`, oldest first. The limit is
 * written into the text, not bound: with `LIMIT $2` PostgreSQL planned the
 * statement afresh at every execution (a custom plan, 0.36 ms of each
 * claim's 0.6, three claims a volume lifecycle); with a literal it keeps one
 * generic plan per limit (at most the worker's concurrency of them).
 * `backupLane: false`: none of the backup lane's rows (the worker's lane is full).
 */
export async function claim(sql: Exec, worker: string, limit: number, opts: { backupLane?: boolean } = {}): Promise<ClaimedRow[]> {
  if (!Number.isSafeInteger(limit) || limit < 1) throw new Error(`claim: limit must be a positive integer, not ${limit}`);
  return sql.unsafe<ClaimedRow[]>(
    `UPDATE resource_states r SET owner = $1
       FROM (SELECT q.resource_type, q.resource_id,
                    CASE q.resource_type
                      WHEN 'volume' THEN ${dataVolumeOf('volume', 'q.resource_id')}
                      WHEN 'snapshot' THEN ${dataVolumeOf('snapshot', 'q.resource_id')}
                    END AS volume_id
               FROM resource_states q
              WHERE ${PENDING} AND (not_before IS NULL OR not_before <= now())${opts.backupLane === false ? ` AND ${NOT_BACKUP_LANE}` : ''}
              ORDER BY updated_at
              LIMIT ${limit}
              FOR UPDATE SKIP LOCKED) d
      WHERE r.resource_type = d.resource_type AND r.resource_id = d.resource_id
      RETURNING r.*, d.volume_id AS data_volume_id, (SELECT v.backend FROM volumes v WHERE v.id = d.volume_id) AS backend`,
    [worker],
    { prepare: true },
  );
}

/**
 * Give a claimed row back to the queue, unchanged, not to be claimed
 * again for `backoffMs` (after an unexpected error in a step, or a fenced
 * resource: retrying at once would only spin).
 */
export async function unclaim(sql: Exec, worker: string, type: string, id: string, backoffMs = 2000): Promise<boolean> {
  const rows = await sql`
    UPDATE resource_states SET owner = NULL, not_before = now() + make_interval(secs => ${backoffMs / 1000})
    WHERE resource_type = ${type} AND resource_id = ${id} AND owner = ${worker}
    RETURNING resource_id`;
  return rows.length > 0;
}

/**
 * Wake every node's workers (a worker that stops, for the work its node
 * kept for it and had not claimed yet: src/enforcer.ts keepWork).
 */
export async function announceWork(sql: Exec): Promise<void> {
  await sql`SELECT pg_notify(${WORK_CHANNEL}, 'handover')`;
}

/** Number of rows waiting for a worker. */
export async function pendingCount(sql: Exec): Promise<number> {
  const [row] = await sql.unsafe(`SELECT count(*)::int AS n FROM resource_states WHERE ${PENDING}`);
  return row!.n as number;
}

/**
 * Rows handed back to wait out a backoff (`not_before` still ahead): work
 * that no claim takes yet, but that is queued all the same. A worker's
 * idle() is not idle while one waits (the storm test once checked its rows
 * at rest while a handed-back delete was waiting out its 2 s).
 */
export async function backingOff(sql: Exec): Promise<boolean> {
  const [row] = await sql.unsafe(`SELECT EXISTS (SELECT 1 FROM resource_states WHERE ${PENDING} AND not_before > now()) AS waiting`);
  return row!.waiting as boolean;
}
