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
async function availableVolume(size = 1): Promise<string> {
  const id = randomUUID();
  const ref = { type: 'volume' as const, id };
  await enforcer.create(db.sql, ref, { readers: 0, dependents: 0, size, operation: null }, { actor: 'setup' });
  for (const type of ['SCHEDULE', 'SCHEDULED', 'BACKEND_CREATED'] as const) {
    const r = await enforcer.apply(db.sql, ref, { type }, { actor: 'setup' });
    expect(r.ok).toBe(true);
  }
  return id;
}

async function race(id: string, events: (i: number) => VolumeEvent): Promise<Outcome[]> {
  return Promise.all(
    clients.map((c, i) => enforcer.apply(c, { type: 'volume', id }, events(i), { actor: `client:${i}` })),
  );
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
      const outcomes = await race(id, (i) => ((i + round) % 2 ? { type: 'EXTEND', new_size: 3 + (i % 4), in_use: false } : { type: 'DELETE' }));
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
      for (const type of ['SCHEDULE', 'SCHEDULED', 'BACKEND_CREATED'] as const) await enforcer.apply(db.sql, ref, { type }, { actor: 'setup' });
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
