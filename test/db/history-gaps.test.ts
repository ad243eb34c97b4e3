/**
 * Reading the history in id order without losing a transition: an id that
 * is missing below a visible one belongs to a transaction that may still
 * commit (the reader waits for it, however long) or that rolled back (the
 * reader passes it once that transaction has surely ended). Forced
 * interleavings on real connections, each written as the CAS writes:
 * the resource row first, then the history row that takes its id.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Sql } from '../../db/connect.ts';
import { HistoryGaps } from '../../db/events.ts';
import { createTestDatabase } from '../helpers/db.ts';
import { eventually } from '../helpers/wait.ts';
import type postgres from 'postgres';

let a: Sql;
let b: Sql;
beforeAll(async () => {
  const url = await createTestDatabase();
  a = connect(url, { max: 1, name: 'gaps-a' });
  b = connect(url, { max: 2, name: 'gaps-b' });
});
afterAll(async () => {
  await a.end({ timeout: 5 });
  await b.end({ timeout: 5 });
});

/** One creation as the CAS makes it, in `tx`: the state row, then its history row (taking the next id). */
async function create(tx: postgres.Sql | postgres.TransactionSql, id = randomUUID()): Promise<number> {
  await tx`INSERT INTO resource_states (resource_type, resource_id, state) VALUES ('volume', ${id}, 'available')`;
  const [row] = await tx<{ id: number }[]>`
    INSERT INTO state_transitions (resource_type, resource_id, from_state, event, to_state, version, actor)
    VALUES ('volume', ${id}, NULL, 'CREATE', 'available', 1, 'test') RETURNING id::float8 AS id`;
  return row!.id;
}

/** The newest transition id now: where a test's reads start. */
async function newest(): Promise<number> {
  const [row] = await b<{ id: number }[]>`SELECT coalesce(max(id), 0)::float8 AS id FROM state_transitions`;
  return row!.id;
}

/**
 * Run `during` while a transaction on connection `a` holds an id it has
 * not committed, then end that transaction as `end` says.
 */
async function holding(end: 'commit' | 'rollback', during: (held: number) => Promise<void>): Promise<number> {
  let held = 0;
  const rollback = new Error('rolled back on purpose');
  await a
    .begin(async (tx) => {
      held = await create(tx);
      await during(held);
      if (end === 'rollback') throw rollback;
    })
    .catch((err: unknown) => {
      if (err !== rollback) throw err;
    });
  return held;
}

describe('HistoryGaps', () => {
  it('does not pass an id whose transaction is still open, however often it reads, and delivers it in order once committed', async () => {
    const gaps = new HistoryGaps();
    const start = await newest();
    let later = 0;
    const held = await holding('commit', async (id) => {
      later = await create(b); // committed, with an id above the held one
      expect(later).toBeGreaterThan(id);
      for (let i = 0; i < 5; i++) expect(await gaps.after(b, start)).toEqual([]);
    });
    const rows = await gaps.after(b, start);
    expect(rows.map((r) => r.id)).toEqual([held, later]);
  });

  it('passes an id whose transaction rolled back, once that transaction has ended', async () => {
    const gaps = new HistoryGaps();
    const start = await newest();
    let later = 0;
    const held = await holding('rollback', async () => {
      later = await create(b);
      expect(await gaps.after(b, start)).toEqual([]); // seen missing while its transaction runs
    });
    // Its transaction has ended without it: a read passes the gap as soon as every transaction that was
    // running when the gap was seen has ended (transaction ids are the cluster's: another test file's
    // transaction running then delays it, never for ever).
    const rows = await eventually(async () => {
      const r = await gaps.after(b, start);
      return r.length ? r : undefined;
    });
    expect(rows.map((r) => r.id)).toEqual([later]);
    expect(rows[0]!.id).toBeGreaterThan(held);
  });

  it('a gap first seen after its transaction rolled back is passed by a later read', async () => {
    const gaps = new HistoryGaps();
    const start = await newest();
    let later = 0;
    await holding('rollback', async () => {
      later = await create(b);
    });
    expect(await gaps.after(b, start)).toEqual([]); // first sight: not yet known to be over
    const rows = await eventually(async () => {
      const r = await gaps.after(b, start);
      return r.length ? r : undefined;
    });
    expect(rows.map((r) => r.id)).toEqual([later]);
  });

  it("is not held back by another database's open transaction (the cluster's transaction ids are shared), only by this one's", async () => {
    const other = connect(await createTestDatabase(), { max: 1, name: 'gaps-other' });
    try {
      let release: () => void = () => {};
      const released = new Promise<void>((r) => (release = r));
      let opened: () => void = () => {};
      const open = new Promise<void>((r) => (opened = r));
      // Another database's transaction, with an xid, open across the whole test.
      const elsewhere = other.begin(async (tx) => {
        await tx`INSERT INTO resource_states (resource_type, resource_id, state) VALUES ('volume', ${randomUUID()}, 'available')`;
        opened();
        await released;
      });
      await open;
      const gaps = new HistoryGaps();
      const start = await newest();
      let later = 0;
      await holding('rollback', async () => {
        later = await create(b);
        expect(await gaps.after(b, start)).toEqual([]);
      });
      const rows = await eventually(async () => {
        const r = await gaps.after(b, start);
        return r.length ? r : undefined;
      });
      expect(rows.map((r) => r.id)).toEqual([later]);
      release();
      await elsewhere;
    } finally {
      await other.end({ timeout: 5 });
    }
  });
});
