/**
 * Crash recovery, run by every live worker: rows owned by dead workers
 * get WORKER_LOST, whose outcome each machine declares per state (resume
 * the step, up to three attempts, then the matching error state; see
 * machines/model.ts). The event is a CAS on `owner = <the dead worker>`:
 * two nodes recovering at once never both apply it, and a worker that
 * comes back finds it no longer owns the row (its next CAS is refused).
 * Readers the dead operation held are given back by the enforcer with
 * the transition that leaves the holding state.
 */
import type { Sql } from '../../db/connect.ts';
import { purgeDeadWorkers, rowsOfDeadOwners } from '../../db/workers.ts';
import type { ResourceType } from '../../machines/index.ts';
import type { Enforcer } from '../enforcer.ts';

export interface RecoveryResult {
  recovered: number;
  /** already recovered by another node, or moved on */
  skipped: number;
  purged: number;
}

export async function recoverDeadOwners(sql: Sql, enforcer: Enforcer, me: string, timeoutMs: number): Promise<RecoveryResult> {
  const result: RecoveryResult = { recovered: 0, skipped: 0, purged: 0 };
  for (const row of await rowsOfDeadOwners(sql, me, timeoutMs)) {
    const outcome = await enforcer.apply(
      sql,
      { type: row.resource_type as ResourceType, id: row.resource_id },
      { type: 'WORKER_LOST' },
      { actor: `recovery:${me}`, owner: row.owner },
    );
    if (outcome.ok) result.recovered++;
    else result.skipped++;
  }
  result.purged = await purgeDeadWorkers(sql, timeoutMs);
  return result;
}
