/**
 * A child process for the lock tests.
 *   count <scope> <name> <dir> <dbUrl|-> <iterations> <counterFile> <journal>:
 *     under the lock, read-increment-write a counter file, noting start/end in a journal;
 *   hold <scope> <name> <dir> <dbUrl|->:
 *     take the lock, say "locked", and wait (to be SIGKILLed).
 */
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs';
import { Coordination, type LockScope } from '../../src/coordination/locks.ts';

const [mode, scope, name, dir, dbUrl, iterations, counterFile, journal] = process.argv.slice(2);
const coordination = new Coordination({ dir: dir!, databaseUrl: dbUrl && dbUrl !== '-' ? dbUrl : undefined });

if (mode === 'hold') {
  await coordination.lock(name!, { scope: scope as LockScope });
  process.stdout.write('locked\n');
  setInterval(() => {}, 1 << 30);
} else {
  for (let i = 0; i < Number(iterations); i++) {
    const lock = await coordination.lock(name!, { scope: scope as LockScope, timeoutMs: 30_000 });
    appendFileSync(journal!, `start ${process.pid}\n`);
    const n = Number(readFileSync(counterFile!, 'utf8'));
    await new Promise((r) => setTimeout(r, 1));
    writeFileSync(counterFile!, String(n + 1));
    appendFileSync(journal!, `end ${process.pid}\n`);
    await lock.release();
  }
  await coordination.close();
}
