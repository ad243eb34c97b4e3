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
/** The snapshot of a read (as text) and this database's running transactions, beside its rows. */
interface SnapshotColumns {
  snapshot: string;
  running: string[];
}

/** A full transaction id (xid8, as text) as `pg_stat_activity` shows it: its low 32 bits. */
const low32 = (xid8: string) => Number(BigInt(xid8) & 0xffffffffn);

export async function lastTransitionId(sql: postgres.Sql): Promise<number> {
  const [row] = await sql<{ id: number }[]>`SELECT coalesce(max(id), 0)::float8 AS id FROM state_transitions`;
  return row!.id;
}

/**
 * Where a reader of the history may pass the ids it has not seen. Ids are
 * handed out as rows are inserted and transactions commit in another order,
 * so id 100 may be missing while 101 is visible: 100's transaction may still
 * commit, or it rolled back and 100 never comes. A time limit guesses; this
 * knows.
 *
 * Every statement that writes the history (db/cas.ts) writes its resource
 * row first and takes the history row's id after, so the transaction that
 * holds a missing id already had its transaction id (xid), and was running,
 * when the snapshot that first saw the gap (S1) was taken. The reader then
 * notes the transactions running in this database (`pg_stat_activity`'s
 * `backend_xid`, read just after S1): the holder is among them, or ended
 * before they were read. A later read whose snapshot has none of them in
 * progress passes the gap: the holder has ended before that snapshot, so
 * its row, had it committed, would be visible in it; missing, it never
 * comes. Transactions of other databases of the cluster, and those begun
 * after the gap was seen, are not waited for; a transaction of this
 * database left open (a client gone mid-transaction, until PostgreSQL ends
 * it) holds every later gap back, and loses nothing.
 */
export class HistoryGaps {
  /** missing id → the xids (low 32 bits) of this database's transactions running when it was first seen missing */
  private readonly seen = new Map<number, Set<number>>();

  /**
   * The transitions after `after`, oldest first, each with the project of
   * its resource (`GET /v3/events` scopes by it), up to the first id that
   * may still commit: every id up to the last one returned is either among
   * them or will never commit. At most `limit`.
   */
  async after(sql: postgres.Sql, after: number, limit = 500): Promise<TransitionEvent[]> {
    return this.pass(
      after,
      await sql<(TransitionEvent & SnapshotColumns)[]>`
        -- The snapshot, and this database's transactions that have an xid (backend_xid: the low 32 bits of the xid8)
        WITH snap AS (SELECT pg_current_snapshot()::text AS snapshot, coalesce((SELECT array_agg(backend_xid::text) FROM pg_stat_activity
                                   WHERE datname = current_database() AND backend_xid IS NOT NULL), '{}') AS running)
        SELECT t.id::float8 AS id, t.resource_type, t.resource_id, t.from_state, t.event, t.to_state, t.version, t.actor,
               t.request_id, t.at, t.size, t.project_id, snap.snapshot, snap.running
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

  private pass<R extends StateTransitionRow>(after: number, rows: (R & SnapshotColumns)[]): R[] {
    // `xmin:xmax:xip,…` — the transactions in progress at this read's snapshot, every database's.
    const inProgress = new Set((rows[0]!.snapshot.split(':')[2] ?? '').split(',').filter(Boolean).map(low32));
    const running = rows[0]!.running;
    const out: R[] = [];
    let expected = after + 1;
    /** a missing id that may still commit was met: nothing after it is handed out this time */
    let blocked = false;
    for (const { snapshot: _s, running: _r, ...rest } of rows) {
      const row = rest as unknown as R;
      if (row.id === null) break; // no transition after `after`: the snapshot's row alone
      // Ids expected … row.id - 1 are missing: each may be passed once the transactions that were running when it
      // was first seen missing are all over. Every gap of the batch is noted now, the ones behind a blocked one
      // too, so that the next read can pass them all at once (one gap per read made a relay in a busy cloud,
      // where rolled-back transactions leave many, crawl at 40 transitions a second).
      for (let id = expected; id < row.id; id++) {
        const waitFor = this.seen.get(id);
        if (waitFor === undefined) {
          this.seen.set(id, new Set(running.map(Number)));
          blocked = true;
        } else if ([...waitFor].some((x) => inProgress.has(x))) blocked = true;
      }
      if (!blocked) {
        for (let id = expected; id < row.id; id++) this.seen.delete(id); // ended without committing them
        out.push(row);
      }
      expected = row.id + 1;
    }
    return out;
  }

  /** Ids at or below `position` are behind every reader: forget them. */
  forget(position: number): void {
    for (const id of this.seen.keys()) if (id <= position) this.seen.delete(id);
  }
}
