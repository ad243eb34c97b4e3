/** The history of one resource: every transition, in version order. */
import type { Executor as Exec } from './connect.ts';

export interface TransitionRecord {
  version: number;
  from_state: string | null;
  event: string;
  to_state: string;
  actor: string;
  request_id: string | null;
  at: Date;
}

export async function historyOf(sql: Exec, type: string, id: string): Promise<TransitionRecord[]> {
  return sql<TransitionRecord[]>`
    SELECT version, from_state, event, to_state, actor, request_id, at
    FROM state_transitions WHERE resource_type = ${type} AND resource_id = ${id}
    ORDER BY version`;
}
