/**
 * `npm run soak`: the harness at the scale it was built for, not a CI test.
 *
 * 1. embedded PostgreSQL: 3 nodes, 32 clients, 1,000,000 operations, a node
 *    SIGKILLed every 5 s and the nodes' connections terminated every 11 s;
 * 2. Patroni (etcd, two PostgreSQL 15 with a synchronous standby): the same,
 *    200,000 operations, and the primary's machine lost every 60 s.
 *
 * Both must end with 0 violations, no 500, and every acknowledged change in
 * the history. Reports (HTML and text) go to .soak/<commit>-<name>.*.
 *
 * Budget: on the 2-core development machine the embedded run makes about
 * 40–45 operations a second under those faults, so the million takes about
 * 6.5 hours and the Patroni run 1.5 hours or more. `--scale 0.1` runs a
 * tenth of each; `--only embedded|patroni` one of them.
 */
import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { scale: { type: 'string', default: '1' }, only: { type: 'string' } } });
const scale = Number(values.scale);
if (!(scale > 0)) throw new Error(`--scale ${values.scale}: a number above 0`);

const RUNS = [
  { name: 'embedded', ops: 1_000_000, args: ['--faults', 'kill:every=5s,pg-terminate:every=11s', '--seed', '18'] },
  {
    name: 'patroni',
    ops: 200_000,
    args: ['--db', 'patroni', '--faults', 'kill:every=5s,pg-terminate:every=11s,pg-failover:every=60s', '--seed', '19'],
  },
].filter((r) => !values.only || r.name === values.only);

const commit = spawnSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).stdout.trim() || 'unknown';
const dir = '.soak';
mkdirSync(dir, { recursive: true });
let failed = 0;
for (const run of RUNS) {
  const ops = Math.max(1, Math.round(run.ops * scale));
  const base = join(dir, `${commit}-${run.name}`);
  const args = ['src/cli.ts', 'harness', '--nodes', '3', '--clients', '32', '--ops', String(ops), ...run.args, '--report', `${base}.html`];
  console.log(`soak ${run.name}: volstate ${args.slice(1).join(' ')}`);
  const started = Date.now();
  const r = spawnSync('npx', ['tsx', ...args], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', maxBuffer: 1024 * 1024 * 1024 });
  writeFileSync(`${base}.txt`, r.stdout);
  process.stdout.write(r.stdout);
  console.log(`soak ${run.name}: exit ${r.status}, ${((Date.now() - started) / 60_000).toFixed(1)} min; report ${base}.html`);
  // Exit 1 is a violation; a 500 fails the soak too (a 503 says the database went away, and what changed).
  if (r.status !== 0 || /5xx answers by status: .*\b500×/.test(r.stdout)) failed++;
}
process.exit(failed > 0 ? 1 : 0);
