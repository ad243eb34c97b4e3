/**
 * Test fixtures for state rows. `putRow` writes a row in any state with
 * any context directly: a fixture, so tests can start from every cell of
 * the matrix. Production code never writes resource_states but through
 * the enforcer.
 */
import { randomUUID } from 'node:crypto';
import type { Sql } from '../../db/connect.ts';
import type { ResourceModel } from '../../machines/index.ts';
import type { StateRow } from '../../src/enforcer.ts';

export async function putRow(
  sql: Sql,
  model: ResourceModel,
  state: string,
  context: Record<string, unknown>,
  id = randomUUID(),
): Promise<string> {
  const row = {
    resource_type: model.type,
    resource_id: id,
    state,
    readers: 0,
    dependents: 0,
    size: 0,
    operation: null,
    owner: null,
    ...context,
  } as Record<string, unknown>;
  await sql`INSERT INTO resource_states ${sql(row as never)}`;
  return id;
}

export async function getRow(sql: Sql, type: string, id: string): Promise<StateRow | undefined> {
  const [row] = await sql<StateRow[]>`SELECT * FROM resource_states WHERE resource_type = ${type} AND resource_id = ${id}`;
  return row;
}

export async function history(sql: Sql, id: string) {
  return sql<{ from_state: string | null; event: string; to_state: string; version: number; actor: string }[]>`
    SELECT from_state, event, to_state, version, actor FROM state_transitions WHERE resource_id = ${id} ORDER BY version`;
}

/** A small seeded PRNG (mulberry32), so a failing random case can be replayed. */
export function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return {
    next,
    int: (lo: number, hi: number) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!,
    chance: (p: number) => next() < p,
  };
}
export type Rng = ReturnType<typeof rng>;

/** A random context for a model: small counters (0 is common), odd operations, sometimes an owner. */
export function randomContext(model: ResourceModel, r: Rng): Record<string, unknown> {
  const ctx: Record<string, unknown> = {};
  for (const [col, type] of Object.entries(model.context)) {
    if (col === 'owner') ctx[col] = r.chance(0.25) ? `worker:${r.int(1, 3)}` : null;
    else if (col === 'operation') ctx[col] = r.pick([null, null, { new_size: r.int(0, 12) }, {}, { new_size: 'x' }]);
    else if (type === 'int') ctx[col] = r.chance(col.startsWith('att_') ? 0.6 : 0.4) ? 0 : r.int(0, col === 'size' ? 12 : 3);
    else if (type === 'bool') ctx[col] = r.chance(0.5);
    else ctx[col] = null;
  }
  return ctx;
}

/**
 * Random parameters for an event of a model. Sizes are often the row's
 * size or one off it, where a `>` written as `>=` would show.
 */
export function randomParams(model: ResourceModel, event: string, r: Rng, context: Record<string, unknown> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const size = typeof context.size === 'number' ? context.size : 2;
  for (const [p, type] of Object.entries(model.events[event]!.params)) {
    if (p === 'status') out[p] = r.pick([...model.resettable, ...model.statuses, 'bogus']);
    else if (p.startsWith('d_')) out[p] = r.pick([-1, 0, 0, 0, 1]);
    else if (p === 'snapshot_id') out[p] = '00000000-0000-4000-8000-00000000000' + r.int(0, 9);
    else if (type === 'int') out[p] = r.chance(0.6) ? size + r.int(-1, 1) : r.int(-1, 14);
    else if (type === 'bool') out[p] = r.chance(0.5);
    else out[p] = `x${r.int(0, 3)}`;
  }
  return out;
}

/** Is (from --event--> to) an edge of the machine? (`to === from` for a transition that keeps the state.) */
export function isMachineEdge(model: ResourceModel, from: string | null, event: string, to: string): boolean {
  if (from === null) return event === 'CREATE' && to === model.index.initial;
  return model.index.candidates(from, event).some((c) => (c.target ?? from) === to);
}
