/**
 * `npm run db:generate`: the migrations db/schema.ts and the machines call
 * for. First drizzle-kit's, from the schema; then, if the machines' states
 * are no longer those of the last `volstate_valid_state` function the
 * migrations define (db/state-check.ts), a migration of its own that
 * replaces the function and re-adds the CHECK (drizzle-kit sees the CHECK's
 * text, a function call, and not what the function says).
 */
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MIGRATIONS } from '../db/migrate.ts';
import { currentValidStateFunction, migrationFiles, validStateFunctionSql, validStateMigrationSql } from '../db/state-check.ts';

const ROOT = join(import.meta.dirname, '..');
const kit = (args: string[]) => {
  const r = spawnSync(join(ROOT, 'node_modules', '.bin', 'drizzle-kit'), ['generate', ...args], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) process.exit(r.status ?? 1);
};

kit(process.argv.slice(2));
if (currentValidStateFunction(MIGRATIONS) === validStateFunctionSql()) {
  console.log('volstate_valid_state: the migrations already hold the machines’ states');
} else {
  kit(['--custom', '--name', 'machine_states']);
  const file = migrationFiles(MIGRATIONS).at(-1)!;
  writeFileSync(file, validStateMigrationSql());
  console.log(`volstate_valid_state: the machines' states changed; wrote ${file}`);
}
