/**
 * Every guard has two faces: the JS predicate XState evaluates and the SQL
 * predicate the compare-and-swap evaluates. They must agree on every row,
 * or the API and the database would disagree about what is allowed. Checked
 * on 1,500 random rows per machine, with random event parameters, in one
 * query per machine against real PostgreSQL.
 */
import { describe, expect, it } from 'vitest';
import { isAllOf } from '../../machines/model.ts';
import { MODELS, type ResourceModel } from '../../machines/index.ts';
import { useTestDatabase } from '../helpers/db.ts';
import { putRow, randomContext, rng } from '../helpers/rows.ts';

const db = useTestDatabase();
const ROWS = 1500;
const SEED = 20261121;

/** All event parameters of a model, with their types. */
function allParams(model: ResourceModel): Record<string, string> {
  const out: Record<string, string> = {};
  for (const spec of Object.values(model.events)) Object.assign(out, spec.params);
  return out;
}

type Atom = [string, { js: (c: unknown, e: unknown) => boolean; sql: string }];
const atomsOf = (model: ResourceModel) => Object.entries(model.guards).filter(([, g]) => !isAllOf(g)) as Atom[];

/** Every `guard` a machine's transitions name, anywhere in its config. */
function guardedTransitions(config: unknown): string[] {
  const found: string[] = [];
  const walk = (node: unknown, path: string) => {
    if (!node || typeof node !== 'object') return;
    for (const [k, v] of Object.entries(node)) {
      if (k === 'guard') found.push(`${path}: ${JSON.stringify(v)}`);
      else walk(v, `${path}.${k}`);
    }
  };
  walk(config, '');
  return found;
}

for (const model of (Object.values(MODELS) as ResourceModel[]).filter((m) => atomsOf(m).length === 0)) {
  describe(`${model.type} guards`, () => {
    // Nothing for the random rows to compare: say so, and check it is true of the machine itself.
    it('there are none: every transition is decided by the state alone', () => {
      expect(Object.keys(model.guards)).toEqual([]);
      expect(guardedTransitions(model.machine.config)).toEqual([]);
    });
  });
}

for (const model of (Object.values(MODELS) as ResourceModel[]).filter((m) => atomsOf(m).length > 0)) {
  describe(`${model.type} guards`, () => {
    it(`agree in JS and SQL on ${ROWS} random rows`, async () => {
      const r = rng(SEED);
      const sql = db.sql;
      const params = allParams(model);
      const atoms = atomsOf(model);
      // The walker that says a guardless machine has none does find these.
      expect(guardedTransitions(model.machine.config).length).toBeGreaterThan(0);

      const cases: { id: string; context: Record<string, unknown>; event: Record<string, unknown> }[] = [];
      for (let i = 0; i < ROWS; i++) {
        const context = randomContext(model, r);
        const event: Record<string, unknown> = { type: 'ANY' };
        for (const [p, type] of Object.entries(params)) {
          event[p] =
            p === 'status'
              ? r.pick([...model.resettable, 'creating', 'bogus'])
              : p.startsWith('d_')
                ? r.pick([-1, 0, 0, 1])
                : type === 'int'
                  ? r.pick([-1, 0, 1, 2, 3, 5, 8, 12, 13])
                  : type === 'bool'
                    ? r.chance(0.5)
                    : `v${r.int(0, 2)}`;
        }
        const id = await putRow(sql, model, r.pick(model.states), context);
        cases.push({ id, context, event });
      }

      // One query: the guards' SQL faces over the rows joined with their parameters.
      const columns = atoms.map(([, g], i) => `(${g.sql.replace(/(?<!:):([a-z_][a-z0-9_]*)/g, 'p.$1')}) AS g${i}`);
      const cast: Record<string, string> = { int: 'int', bool: 'boolean' };
      const paramCols = Object.entries(params).map(([p, type]) => `(x->>'${p}')::${cast[type] ?? 'text'} AS ${p}`);
      const rows = await sql.unsafe(
        `SELECT r.resource_id, ${columns.join(', ')}
           FROM resource_states r
           JOIN (SELECT (x->>'id')::uuid AS id, ${paramCols.join(', ') || 'NULL AS none'}
                   FROM jsonb_array_elements($1::jsonb) x) p ON p.id = r.resource_id
          WHERE r.resource_type = $2`,
        [cases.map((c) => ({ id: c.id, ...c.event })) as never, model.type],
      );
      expect(rows.length).toBe(ROWS);
      const byId = new Map(rows.map((row) => [row.resource_id as string, row]));

      const disagreements: string[] = [];
      let trues = 0;
      for (const c of cases) {
        const row = byId.get(c.id)!;
        atoms.forEach(([name, g], i) => {
          const js = g.js(c.context, c.event);
          const db = row[`g${i}`] === true;
          if (js) trues++;
          if (js !== db) disagreements.push(`${name} on ${JSON.stringify(c.context)} ${JSON.stringify(c.event)}: js=${js} sql=${db}`);
        });
      }
      expect(disagreements.slice(0, 5)).toEqual([]);
      // The random rows exercise both outcomes of the guards, not only one.
      expect(trues).toBeGreaterThan(ROWS);
      expect(trues).toBeLessThan(ROWS * atoms.length - ROWS);
    });
  });
}
