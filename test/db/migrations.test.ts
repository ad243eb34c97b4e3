/**
 * Migrations are generated from db/schema.ts, whose state CHECK and
 * work-queue index are built from the machines. If a machine or the schema
 * changed and nobody ran `npm run db:generate`, drizzle-kit would generate
 * a new migration: this test runs it into a scratch copy and fails if it
 * does, naming the command to run.
 */
import { execFileSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIGRATIONS } from '../../db/migrate.ts';
import { MODELS } from '../../machines/index.ts';
import { currentValidStateFunction, validStateFunctionSql, validStateMigrationSql } from '../../db/state-check.ts';
import { useTestDatabase } from '../helpers/db.ts';

const db = useTestDatabase();
const ROOT = resolve(import.meta.dirname, '../..');

describe('migrations', () => {
  it('are up to date with db/schema.ts and the machines (run `npm run db:generate` if this fails)', () => {
    const scratch = mkdtempSync(join(tmpdir(), 'volstate-drift-'));
    try {
      const out = join(scratch, 'migrations');
      cpSync(MIGRATIONS, out, { recursive: true });
      const config = join(scratch, 'drizzle.config.mjs');
      writeFileSync(
        config,
        // drizzle-kit reads `out` relative to its working directory.
        `export default ${JSON.stringify({ dialect: 'postgresql', schema: join(ROOT, 'db/schema.ts'), out: 'migrations' })};\n`,
      );
      const before = readdirSync(out).sort();
      const log = execFileSync(join(ROOT, 'node_modules/.bin/drizzle-kit'), ['generate', '--config', config], {
        cwd: scratch,
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      // drizzle-kit exits 0 even when it fails, so insist on its "nothing to do" line.
      expect(log).toMatch(/No schema changes/);
      expect(readdirSync(out).sort(), log).toEqual(before);
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  });

  it('give the database the states of the machines, and nothing else', async () => {
    const [volume] = MODELS.volume.states;
    await db.sql`INSERT INTO resource_states (resource_type, resource_id, state) VALUES ('volume', gen_random_uuid(), ${volume!})`;
    await expect(
      db.sql`INSERT INTO resource_states (resource_type, resource_id, state) VALUES ('volume', gen_random_uuid(), 'in-limbo')`,
    ).rejects.toMatchObject({ code: '23514' });
    await expect(
      db.sql`INSERT INTO resource_states (resource_type, resource_id, state) VALUES ('snapshot', gen_random_uuid(), 'creating.db')`,
    ).rejects.toMatchObject({ code: '23514' });
  });

  it("define volstate_valid_state with the machines' states (run `npm run db:generate` if this fails)", () => {
    expect(currentValidStateFunction(MIGRATIONS)).toBe(validStateFunctionSql());
  });

  it("check the rows already there when the machines' states change", async () => {
    const id = crypto.randomUUID();
    await db.sql`INSERT INTO resource_states (resource_type, resource_id, state) VALUES ('volume', ${id}, 'available')`;
    // A machine without 'available': db:generate's migration for it, run as the migrator runs it, in a transaction.
    const migration = validStateMigrationSql().replace("'creating.parked', 'available', ", "'creating.parked', ");
    expect(migration).not.toBe(validStateMigrationSql());
    await expect(
      db.sql.begin(async (tx) => {
        for (const statement of migration.split('--> statement-breakpoint')) await tx.unsafe(statement);
      }),
    ).rejects.toMatchObject({ code: '23514' });
    // Nothing of it stayed: the row is there and the states are the machines'.
    const [fn] = await db.sql<{ def: string }[]>`SELECT prosrc AS def FROM pg_proc WHERE proname = 'volstate_valid_state'`;
    expect(validStateFunctionSql()).toContain(fn!.def);
    await db.sql`DELETE FROM resource_states WHERE resource_id = ${id}`;
  });
});
