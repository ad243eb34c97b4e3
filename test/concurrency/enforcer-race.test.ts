/**
 * Twenty connections (twenty PostgreSQL sessions, not one pool) send the
 * same event to one row at the same moment, many times over. Invariants:
 * exactly one wins an exclusive transition; every loser is refused with the
 * state the winner left (never the stale one it started from); versions
 * are contiguous and the history has one row per version, nothing lost or
 * doubled. Shared-use transitions (readers) all win and all count.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Sql } from '../../db/connect.ts';
import { Enforcer, type Outcome } from '../../src/enforcer.ts';
import type { VolumeEvent } from '../../machines/volume.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { getRow, history, isMachineEdge } from '../helpers/rows.ts';
import { MODELS } from '../../machines/index.ts';

const db = useTestDatabase();
const enforcer = new Enforcer();
const CLIENTS = 20;
const ROUNDS = 25;
let clients: Sql[] = [];

beforeAll(async () => {
  clients = Array.from({ length: CLIENTS }, () => connect(db.url, { max: 1, name: 'race' }));
  // Open every session before the races, so they start together.
  await Promise.all(clients.map((c) => c`SELECT 1`));
  const pids = await Promise.all(clients.map(async (c) => (await c`SELECT pg_backend_pid() AS pid`)[0]!.pid));
  expect(new Set(pids).size).toBe(CLIENTS);
});
afterAll(async () => {
  await Promise.all(clients.map((c) => c.end({ timeout: 5 })));
});

/** A volume made through the enforcer and driven to `available` (versions 1–4). */
/** A volume's creation steps, as a worker sends them. */
const CREATED = [{ type: 'SCHEDULE' }, { type: 'SCHEDULED', backend: 'default' }, { type: 'BACKEND_CREATED' }] as const;

async function availableVolume(size = 1): Promise<string> {
  const id = randomUUID();
  const ref = { type: 'volume' as const, id };
  await enforcer.create(db.sql, ref, { readers: 0, dependents: 0, size, operation: null }, { actor: 'setup' });
  for (const event of CREATED) {
    const r = await enforcer.apply(db.sql, ref, event, { actor: 'setup' });
    expect(r.ok).toBe(true);
  }
  return id;
}

async function race(id: string, events: (i: number) => VolumeEvent): Promise<Outcome[]> {
  return Promise.all(clients.map((c, i) => enforcer.apply(c, { type: 'volume', id }, events(i), { actor: `client:${i}` })));
}

async function checkHistory(id: string, finalVersion: number) {
  const log = await history(db.sql, id);
  expect(log.map((h) => h.version)).toEqual(Array.from({ length: finalVersion }, (_, i) => i + 1));
  for (let i = 1; i < log.length; i++) expect(log[i]!.from_state).toBe(log[i - 1]!.to_state);
  return log;
}

describe(`${CLIENTS} sessions racing one row, ${ROUNDS} rounds each`, () => {
  it('DELETE: exactly one wins; the rest are refused as busy, seeing `deleting`', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = await availableVolume();
      const outcomes = await race(id, () => ({ type: 'DELETE' }));
      const winners = outcomes.filter((o) => o.ok);
      expect(winners).toHaveLength(1);
      for (const o of outcomes.filter((o) => !o.ok)) {
        expect(o).toMatchObject({ ok: false, kind: 'busy', state: 'deleting.backend' });
      }
      expect(await getRow(db.sql, 'volume', id)).toMatchObject({ state: 'deleting.backend', version: 5 });
      const log = await checkHistory(id, 5);
      expect(log.filter((h) => h.event === 'DELETE')).toHaveLength(1);
    }
  });

  it('identical EXTEND: exactly one wins, the size grows once (no leaked quota)', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = await availableVolume(3);
      const outcomes = await race(id, () => ({ type: 'EXTEND', new_size: 4, in_use: false }));
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      expect(outcomes.filter((o) => !o.ok).every((o) => !o.ok && o.kind === 'busy' && o.state === 'extending.backend')).toBe(true);
      const done = await enforcer.apply(db.sql, { type: 'volume', id }, { type: 'EXTENDED' }, { actor: 'worker' });
      expect(done).toMatchObject({ ok: true, row: { state: 'available', size: 4, version: 6 } });
      await checkHistory(id, 6);
    }
  });

  it('mixed DELETE / EXTEND: exactly one of all of them wins', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = await availableVolume(2);
      const outcomes = await race(id, (i) =>
        (i + round) % 2 ? { type: 'EXTEND', new_size: 3 + (i % 4), in_use: false } : { type: 'DELETE' },
      );
      expect(outcomes.filter((o) => o.ok)).toHaveLength(1);
      const row = await getRow(db.sql, 'volume', id);
      expect(['deleting.backend', 'extending.backend']).toContain(row!.state);
      for (const o of outcomes.filter((o) => !o.ok)) expect(o).toMatchObject({ kind: 'busy', state: row!.state });
      await checkHistory(id, 5);
    }
  });

  it('with FORCE_DELETE in the mix: an admin may override a pending extend, and history stays a machine path', async () => {
    const kinds = ['DELETE', 'EXTEND', 'FORCE_DELETE'] as const;
    for (let round = 0; round < ROUNDS; round++) {
      const id = await availableVolume(2);
      const outcomes = await race(id, (i) => {
        const type = kinds[(i + round) % kinds.length]!;
        return type === 'EXTEND' ? { type, new_size: 3 + (i % 4), in_use: false } : { type };
      });
      const won = outcomes.filter((o) => o.ok).length;
      expect(won).toBeGreaterThanOrEqual(1);
      expect(won).toBeLessThanOrEqual(2); // at most: EXTEND, then FORCE_DELETE of the unclaimed extend
      const row = await getRow(db.sql, 'volume', id);
      const log = await checkHistory(id, 4 + won);
      for (const h of log) expect(isMachineEdge(MODELS.volume, h.from_state, h.event, h.to_state), JSON.stringify(h)).toBe(true);
      if (won === 2) expect(row!.state).toBe('deleting.backend');
    }
  });

  it('SNAPSHOT_BEGIN (shared use): all twenty win, and all twenty readers are counted', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = await availableVolume();
      const outcomes = await race(id, () => ({ type: 'SNAPSHOT_BEGIN', force: false }));
      expect(outcomes.every((o) => o.ok)).toBe(true);
      expect(await getRow(db.sql, 'volume', id)).toMatchObject({ state: 'available', readers: CLIENTS, dependents: CLIENTS });
      await checkHistory(id, 4 + CLIENTS);
      // A delete now is refused as invalid, not busy: besides the readers,
      // the volume has snapshots, which waiting will not remove.
      const del = await enforcer.apply(db.sql, { type: 'volume', id }, { type: 'DELETE' }, { actor: 'x' });
      expect(del).toMatchObject({ ok: false, kind: 'invalid' });
    }
  });

  it('READ_END racing DELETE: the delete wins only once every reader is gone', async () => {
    for (let round = 0; round < ROUNDS; round++) {
      const id = randomUUID();
      const ref = { type: 'volume' as const, id };
      await enforcer.create(db.sql, ref, { readers: 0, dependents: 0, size: 1, operation: null }, { actor: 'setup' });
      for (const event of CREATED) await enforcer.apply(db.sql, ref, event, { actor: 'setup' });
      // Ten readers without snapshots (clones, in the next issue).
      for (let i = 0; i < 10; i++) await db.sql`UPDATE resource_states SET readers = readers + 1 WHERE resource_id = ${id}`;
      const outcomes = await race(id, (i) => (i < 10 ? { type: 'READ_END' } : { type: 'DELETE' }));
      const row = await getRow(db.sql, 'volume', id);
      expect(row!.readers).toBe(0);
      const deletes = outcomes.slice(10);
      const won = deletes.filter((o) => o.ok).length;
      expect(won).toBeLessThanOrEqual(1);
      expect(row!.state).toBe(won === 1 ? 'deleting.backend' : 'available');
      for (const o of deletes) if (!o.ok) expect(['busy']).toContain(o.kind);
    }
  });
});

/**
 * Group commit (src/group-commit.ts, db/cas.ts compileBatch): batches that
 * share rows, sent at once on many sessions, each naming the rows in its own
 * random order. The batched statement locks its rows in id order before it
 * changes any, so no two batches wait on each other in a circle: PostgreSQL
 * finds no deadlock (which would refuse the batch and send each row alone,
 * counted as a fallback), and every row's count and history add up.
 */
describe('group commit: batches sharing rows on many sessions', () => {
  const ROWS = 24;
  const BATCH_ROUNDS = 15;

  it(`${CLIENTS} sessions each send READ_BEGIN then READ_END to all ${ROWS} rows in a random order, ${BATCH_ROUNDS} rounds: no deadlock, counts exact`, async () => {
    const ids = await Promise.all(Array.from({ length: ROWS }, () => availableVolume()));
    const before = { ...enforcer.batches };
    const shuffled = (seed: number) => {
      const out = [...ids];
      for (let i = out.length - 1; i > 0; i--) {
        seed = (seed * 1103515245 + 12345) % 2 ** 31;
        const j = seed % (i + 1);
        [out[i], out[j]] = [out[j]!, out[i]!];
      }
      return out;
    };
    for (let round = 0; round < BATCH_ROUNDS; round++) {
      for (const type of ['READ_BEGIN', 'READ_END'] as const) {
        const settled = await Promise.all(
          clients.map((c, i) =>
            enforcer.applyBatch(
              c,
              'volume',
              shuffled(round * 1000 + i * 31 + type.length).map((id) => ({ id, event: { type }, opts: { actor: `client:${i}` } })),
            ),
          ),
        );
        for (const s of settled.flat()) expect(s).toMatchObject({ status: 'fulfilled', value: { ok: true } });
      }
    }
    expect(enforcer.batches.fallbacks - before.fallbacks, 'batches PostgreSQL refused whole (a deadlock among them)').toBe(0);
    expect(enforcer.batches.statements - before.statements).toBe(BATCH_ROUNDS * 2 * CLIENTS);
    for (const id of ids) {
      expect(await getRow(db.sql, 'volume', id)).toMatchObject({ state: 'available', readers: 0, version: 4 + BATCH_ROUNDS * 2 * CLIENTS });
      await checkHistory(id, 4 + BATCH_ROUNDS * 2 * CLIENTS);
    }
  });

  it(`${CLIENTS} callers race DELETE on one row through the grouping: one wins, each loser sees \`deleting\`, and they shared statements`, async () => {
    const grouped = new Enforcer();
    const pool = connect(db.url, { max: 4, name: 'group-commit' });
    try {
      grouped.groupCommit(pool);
      const ids = await Promise.all(Array.from({ length: ROUNDS }, () => availableVolume()));
      // Every caller's DELETE of every row at once: a row named twice goes in a later statement.
      const outcomes = await Promise.all(
        ids.flatMap((id) =>
          Array.from({ length: CLIENTS }, (_, i) =>
            grouped.apply(pool, { type: 'volume', id }, { type: 'DELETE' }, { actor: `client:${i}` }).then((o) => ({ id, o })),
          ),
        ),
      );
      for (const id of ids) {
        const mine = outcomes.filter((x) => x.id === id).map((x) => x.o);
        expect(mine.filter((o) => o.ok)).toHaveLength(1);
        for (const o of mine.filter((o) => !o.ok)) expect(o).toMatchObject({ kind: 'busy', state: 'deleting.backend' });
        await checkHistory(id, 5);
      }
      expect(grouped.batches.fallbacks).toBe(0);
      // They were grouped: far fewer statements than the 500 calls.
      expect(grouped.batches.rows).toBe(ROUNDS * CLIENTS);
      expect(grouped.batches.statements).toBeLessThanOrEqual(CLIENTS * 2);
    } finally {
      await pool.end({ timeout: 5 });
    }
  });
});
