/**
 * The CHECK that `resource_states` holds only the machines' states
 * (`resource_states_valid_state`), as a function built from the machines:
 *
 *   CHECK (volstate_valid_state(resource_type, state))
 *
 * Written inline (`(resource_type = 'volume' AND state IN (…33 states…)) OR
 * …` for six machines), the same rule cost every write of the table 47 µs
 * of PostgreSQL's time, half of a single-row UPDATE's 87 µs: a CHECK is
 * stored as a node tree in text (21 KB for this one) that PostgreSQL reads
 * back and prepares at every execution of a statement that writes the
 * table. A function call is a node of a few hundred bytes, and PL/pgSQL
 * keeps the function compiled for the session. Measured on one connection,
 * 7 rounds of 2,000 single-row UPDATEs: 87 µs → 40 µs. (The work queue's
 * partial index, db/queue.ts, costs 15 µs in the same way; as a function it
 * cost more, 25 µs, and a one-array form 10 µs more: it stays inline.)
 *
 * The function is IMMUTABLE, which holds only while the machines do: its
 * body changes with them in a migration of its own (`npm run db:generate`
 * writes it, test/db/migrations.test.ts fails until it is written), which
 * re-adds the constraint, so the rows already there are checked against the
 * new states as an inline CHECK's regeneration would.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MODELS } from '../machines/index.ts';
import { quoted } from './queue.ts';

export const VALID_STATE_FUNCTION = 'volstate_valid_state';

/** `CREATE OR REPLACE FUNCTION volstate_valid_state…`: every (resource type, state) pair the machines allow. */
export function validStateFunctionSql(): string {
  const cases = Object.values(MODELS).map((m) => `    WHEN '${m.type}' THEN state IN (${quoted(m.states)})`);
  return `CREATE OR REPLACE FUNCTION ${VALID_STATE_FUNCTION}(resource_type text, state text) RETURNS boolean
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN CASE resource_type
${cases.join('\n')}
    ELSE false
  END;
END
$$;`;
}

/** A migration that brings the function to the machines' states and checks the table's rows against them again. */
export function validStateMigrationSql(why = "The machines' states changed"): string {
  return `-- ${why}: db/state-check.ts (written by npm run db:generate).
${validStateFunctionSql()}
--> statement-breakpoint
ALTER TABLE "resource_states" DROP CONSTRAINT "resource_states_valid_state";
--> statement-breakpoint
ALTER TABLE "resource_states" ADD CONSTRAINT "resource_states_valid_state" CHECK (${VALID_STATE_FUNCTION}("resource_states"."resource_type", "resource_states"."state"));
`;
}

/** The last `CREATE OR REPLACE FUNCTION volstate_valid_state…` statement in a migration's text, if any. */
export function validStateFunctionIn(migration: string): string | undefined {
  const at = migration.lastIndexOf(`CREATE OR REPLACE FUNCTION ${VALID_STATE_FUNCTION}(`);
  if (at < 0) return undefined;
  const end = migration.indexOf('$$;', migration.indexOf('$$', at) + 2);
  return end < 0 ? undefined : migration.slice(at, end + 3);
}

/** The migration files in `dir`, in the order drizzle's journal applies them. */
export function migrationFiles(dir: string): string[] {
  const journal = JSON.parse(readFileSync(join(dir, 'meta', '_journal.json'), 'utf8')) as { entries: { tag: string }[] };
  return journal.entries.map(({ tag }) => join(dir, `${tag}.sql`));
}

/** The function as the migrations in `dir` leave it (journal order), or undefined when none defines it. */
export function currentValidStateFunction(dir: string): string | undefined {
  let current: string | undefined;
  for (const file of migrationFiles(dir)) current = validStateFunctionIn(readFileSync(file, 'utf8')) ?? current;
  return current;
}
