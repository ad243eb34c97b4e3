/**
 * The history as a stream: transitions after a given id, in id order (with
 * the project of the resource, for `GET /v3/events`'s scoping), never
 * passing an id that may still commit (HistoryGaps).
 */
import type postgres from 'postgres';
import type { StateTransitionRow } from './schema.ts';

/** A history row, with the project of its resource. */
export type TransitionEvent = StateTransitionRow & { project_id: string | null };

/** The newest transition id (0 when there is none): where a stream with no Last-Event-ID starts. */
export async function lastTransitionId(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ id: number }[]>`SELECT coalesce(max(id), 0)::float8 AS id FROM state_transitions`;
  return row!.id;
}

/**
 * Where a reader of the history may pass the ids it has not seen. Ids are
 * handed out as rows are inserted and transactions commit in another order,
 * so id 100 may be missing while 101 is visible: 100's transaction may still
 * commit, or it rolled back and 100 never comes. A time limit guesses; this
 * knows. Every statement that writes the history (db/cas.ts) writes its
 * resource row first and takes the history row's id after, so the
 * transaction holding a missing id below a visible one had its transaction
 * id (xid) before the snapshot that saw the gap was taken: below that
 * snapshot's xmax. Once a later snapshot's xmin (the oldest transaction
 * still running) is at or past that xmax, the transaction has ended; if the
 * id is still missing then, it never comes.
 */
export class HistoryGaps {
  /** missing id → the xmax of the snapshot that first saw it missing */
  private readonly seen = new Map<number, bigint>();

  /**
   * The transitions after `after`, oldest first, up to the first id that
   * may still commit: every id up to the last one returned is either among
   * them or will never commit. At most `limit`.
   */
  async after(sql: postgres.Sql, after: number, limit = 500): Promise<StateTransitionRow[]> {
    return this.pass(
      after,
      await sql<(StateTransitionRow & { xmin: string; xmax: string })[]>`
        WITH snap AS (SELECT pg_current_snapshot() AS s)
        SELECT t.id::float8 AS id, t.resource_type, t.resource_id, t.from_state, t.event, t.to_state, t.version, t.actor,
               t.request_id, t.at, t.size, pg_snapshot_xmin(snap.s)::text AS xmin, pg_snapshot_xmax(snap.s)::text AS xmax
        FROM snap LEFT JOIN LATERAL (
          SELECT * FROM state_transitions WHERE id > ${after} ORDER BY id LIMIT ${limit}
        ) t ON true`,
    );
  }

  /** The same, each with the project of its resource (for `GET /v3/events`). */
  async afterWithProject(sql: postgres.Sql, after: number, limit = 500): Promise<TransitionEvent[]> {
    return this.pass(
      after,
      await sql<(TransitionEvent & { xmin: string; xmax: string })[]>`
        WITH snap AS (SELECT pg_current_snapshot() AS s)
        SELECT t.id::float8 AS id, t.resource_type, t.resource_id, t.from_state, t.event, t.to_state, t.version, t.actor,
               t.request_id, t.at, t.size, t.project_id, pg_snapshot_xmin(snap.s)::text AS xmin, pg_snapshot_xmax(snap.s)::text AS xmax
        FROM snap LEFT JOIN LATERAL (
          SELECT t.*, coalesce(v.project_id, n.project_id, a.project_id) AS project_id
          FROM state_transitions t
          LEFT JOIN volumes v ON t.resource_type = 'volume' AND v.id = t.resource_id
          LEFT JOIN snapshots n ON t.resource_type = 'snapshot' AND n.id = t.resource_id
          LEFT JOIN attachments a ON t.resource_type = 'attachment' AND a.id = t.resource_id
          WHERE t.id > ${after} ORDER BY t.id LIMIT ${limit}
        ) t ON true`,
    );
  }

  private pass<R extends StateTransitionRow>(after: number, rows: (R & { xmin: string; xmax: string })[]): R[] {
    const xmin = BigInt(rows[0]!.xmin);
    const xmax = BigInt(rows[0]!.xmax);
    const out: R[] = [];
    let expected = after + 1;
    for (const { xmin: _n, xmax: _x, ...rest } of rows) {
      const row = rest as unknown as R;
      if (row.id === null) break; // no transition after `after`: the snapshot's row alone
      if (expected < row.id) {
        // Ids expected … row.id - 1 are missing: each may be passed once the snapshot that first saw it missing is behind.
        let passable = true;
        for (let id = expected; id < row.id; id++) {
          const since = this.seen.get(id);
          if (since === undefined) this.seen.set(id, xmax);
          if (since === undefined || xmin < since) passable = false;
        }
        if (!passable) return out; // a transaction that holds one of them may still commit
        for (let id = expected; id < row.id; id++) this.seen.delete(id); // ended without committing them
      }
      out.push(row);
      expected = row.id + 1;
    }
    return out;
  }

  /** Ids at or below `position` are behind every reader: forget them. */
  forget(position: number): void {
    for (const id of this.seen.keys()) if (id <= position) this.seen.delete(id);
  }
}
