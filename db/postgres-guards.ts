/**
 * The server refuses to start on an unpatched postgres.js: without the
 * guards of scripts/patch-postgres.mjs a database restart can crash
 * the process or answer an existing volume with 404, and a node under
 * load slows down the longer it runs. The patch runs at
 * `npm install`; `npm ci --ignore-scripts` (or a copied node_modules)
 * skips it silently, so the check is made where it matters, at start.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { GUARDS } from '../scripts/postgres-guards.mjs';

/** The directory of the postgres.js this process loads (the ESM build, `postgres`'s "import" export). */
function sourceDir(): string {
  return dirname(fileURLToPath(import.meta.resolve('postgres')));
}

/** How many of the guards are missing from postgres.js as installed in `dir` (0: all in place). */
export function missingPostgresGuards(dir = sourceDir()): number {
  const texts = new Map<string, string>();
  const text = (file: string) => texts.get(file) ?? texts.set(file, readFileSync(join(dir, file), 'utf8')).get(file)!;
  return GUARDS.filter(([file, , guard]) => !text(file).includes(guard)).length;
}

export class UnpatchedPostgres extends Error {
  constructor(missing: number) {
    super(
      `postgres.js is missing ${missing} of the ${GUARDS.length} guards volstate needs (against dying connections, and a pool queue whose cost grew with time) ` +
        '(see scripts/patch-postgres.mjs). Run `node scripts/patch-postgres.mjs` (npm install runs it; npm ci --ignore-scripts does not), then start again.',
    );
  }
}

/** Throw, saying how to fix it, unless every guard is in place. */
export function assertPostgresPatched(): void {
  const missing = missingPostgresGuards();
  if (missing > 0) throw new UnpatchedPostgres(missing);
}
