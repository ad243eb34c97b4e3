/**
 * What the operator page shows, read in three small queries: live
 * resources per state, the workers with their heartbeats and what each
 * owns, and rows that look stuck (in a transient state for longer than a
 * threshold).
 */
import type postgres from 'postgres';

export interface Overview {
  /** machine → state → count (live resources) */
  counts: Record<string, Record<string, number>>;
  workers: { id: string; host: string; pid: number; heartbeat_age_s: number; owned: number }[];
  stuck: { resource_type: string; resource_id: string; state: string; for_s: number; owner: string | null }[];
}

export async function overview(sql: postgres.Sql, gone: readonly string[], transient: readonly string[], stuckAfterS: number): Promise<Overview> {
  const counts: Overview['counts'] = {};
  for (const r of await sql<{ machine: string; state: string; n: number }[]>`
    SELECT resource_type AS machine, state, count(*)::int AS n FROM resource_states
    WHERE resource_type || ':' || state <> ALL(${gone as string[]}) GROUP BY 1, 2`) {
    (counts[r.machine] ??= {})[r.state] = r.n;
  }
  const workers = await sql<Overview['workers']>`
    SELECT w.id, w.host, w.pid, extract(epoch FROM now() - w.heartbeat_at)::float8 AS heartbeat_age_s,
           (SELECT count(*)::int FROM resource_states r WHERE r.owner = w.id) AS owned
    FROM workers w ORDER BY w.id`;
  const stuck = await sql<Overview['stuck']>`
    SELECT resource_type, resource_id, state, extract(epoch FROM now() - updated_at)::float8 AS for_s, owner
    FROM resource_states
    WHERE resource_type || ':' || state = ANY(${transient as string[]}) AND updated_at < now() - make_interval(secs => ${stuckAfterS})
    ORDER BY updated_at LIMIT 50`;
  return { counts, workers: [...workers], stuck: [...stuck] };
}
