/**
 * What the operator page shows, read in three small queries: live
 * resources per state, the workers with their heartbeats and what each
 * owns, and rows that look stuck: in a transient state for longer than
 * `factor` × the usual time resources spent there (the median over the
 * last 5,000 transitions; at least `floorS`).
 */
import type postgres from 'postgres';
import { MODELS, RESOURCE_TYPES } from '../machines/index.ts';
import { lastTransitionId } from './events.ts';

/** `type:state` of every state matching `pick`, over all machines (what the SQL below compares with). */
const qualified = (pick: (type: (typeof RESOURCE_TYPES)[number], state: string) => boolean) =>
  RESOURCE_TYPES.flatMap((t) => MODELS[t].states.filter((s) => pick(t, s)).map((s) => `${t}:${s}`));
const GONE = qualified((t, s) => MODELS[t].index.isFinal(s));
const TRANSIENT = qualified((t, s) => MODELS[t].index.isTransient(s));

/** machine → state → number of live resources (final states left out): the operator page's and /metrics' gauge. */
export async function liveStateCounts(sql: postgres.Sql): Promise<Record<string, Record<string, number>>> {
  const counts: Record<string, Record<string, number>> = {};
  for (const r of await sql<{ machine: string; state: string; n: number }[]>`
    SELECT resource_type AS machine, state, count(*)::int AS n FROM resource_states
    WHERE resource_type || ':' || state <> ALL(${GONE}) GROUP BY 1, 2`) {
    (counts[r.machine] ??= {})[r.state] = r.n;
  }
  return counts;
}

export interface Overview {
  /** machine → state → count (live resources) */
  counts: Record<string, Record<string, number>>;
  workers: { id: string; host: string; pid: number; heartbeat_age_s: number; owned: number }[];
  stuck: { resource_type: string; resource_id: string; state: string; for_s: number; usual_s: number | null; owner: string | null }[];
  /**
   * The newest transition when the counts were read (read before them): a
   * page that shows them follows `/v3/events` from here (`last_event_id`),
   * so no transition between this read and its stream is lost.
   */
  last_event_id: number;
}

export async function overview(sql: postgres.Sql, stuck: { factor: number; floorS: number }): Promise<Overview> {
  const lastEventId = await lastTransitionId(sql);
  const counts = await liveStateCounts(sql);
  const workers = await sql<Overview['workers']>`
    SELECT w.id, w.host, w.pid, extract(epoch FROM now() - w.heartbeat_at)::float8 AS heartbeat_age_s,
           (SELECT count(*)::int FROM resource_states r WHERE r.owner = w.id) AS owned
    FROM workers w ORDER BY w.id`;
  // How long resources usually stay in each state: from entering it to the next transition, over recent history (bounded).
  const rows = await sql<Overview['stuck']>`
    WITH recent AS (
      SELECT resource_type, resource_id, to_state, at,
             lead(at) OVER (PARTITION BY resource_type, resource_id ORDER BY version) AS left_at
      FROM (SELECT * FROM state_transitions ORDER BY id DESC LIMIT 5000) t),
    usual AS (
      SELECT resource_type, to_state AS state,
             percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM left_at - at)) AS usual_s
      FROM recent WHERE left_at IS NOT NULL GROUP BY 1, 2)
    SELECT r.resource_type, r.resource_id, r.state, extract(epoch FROM now() - r.updated_at)::float8 AS for_s, u.usual_s::float8 AS usual_s, r.owner
    FROM resource_states r LEFT JOIN usual u ON u.resource_type = r.resource_type AND u.state = r.state
    WHERE r.resource_type || ':' || r.state = ANY(${TRANSIENT})
      AND r.updated_at < now() - make_interval(secs => greatest(${stuck.floorS}::float8, ${stuck.factor}::float8 * coalesce(u.usual_s, 0)))
    ORDER BY r.updated_at LIMIT 50`;
  return { counts, workers: [...workers], stuck: [...rows], last_event_id: lastEventId };
}
