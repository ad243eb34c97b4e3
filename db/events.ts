/**
 * The history as a stream: transitions after a given id, in id order, with
 * the project of the resource (for scoping), for `GET /v3/events`.
 */
import type postgres from 'postgres';
import type { StateTransitionRow } from './schema.ts';

/** A history row, with the project of its resource. */
export type TransitionEvent = StateTransitionRow & { project_id: string | null };

/** Transitions with an id above `after`, oldest first, at most `limit`. */
export async function transitionsAfter(sql: postgres.Sql, after: number, limit = 500): Promise<TransitionEvent[]> {
  return sql<TransitionEvent[]>`
    SELECT t.id::float8 AS id, t.resource_type, t.resource_id, t.from_state, t.event, t.to_state, t.version, t.actor, t.request_id, t.at,
           coalesce(v.project_id, n.project_id, a.project_id) AS project_id
    FROM state_transitions t
    LEFT JOIN volumes v ON t.resource_type = 'volume' AND v.id = t.resource_id
    LEFT JOIN snapshots n ON t.resource_type = 'snapshot' AND n.id = t.resource_id
    LEFT JOIN attachments a ON t.resource_type = 'attachment' AND a.id = t.resource_id
    WHERE t.id > ${after}
    ORDER BY t.id
    LIMIT ${limit}`;
}

/** The newest transition id (0 when there is none): where a stream with no Last-Event-ID starts. */
export async function lastTransitionId(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ id: number }[]>`SELECT coalesce(max(id), 0)::float8 AS id FROM state_transitions`;
  return row!.id;
}
