/**
 * Harness scenarios are data: a JSON file in harness/scenarios/ (or any
 * path) naming how many volumes to start with and a weight per operation.
 * Adding a scenario is adding a file.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

/** What a client can do; each is one or two requests (src/harness/client.ts). */
export const OPERATIONS = [
  'create',
  'delete',
  'delete-first',
  'delete-newest',
  'cascade',
  'snapshot',
  'snapshot-delete',
  'clone',
  'attach',
  'complete',
  'detach',
  'extend',
  'revert',
  'backup',
  'backup-incremental',
  'backup-delete',
  'restore',
  'group-create',
  'group-join',
  'group-leave',
  'group-snapshot',
  'group-snapshot-delete',
  'group-delete',
] as const;
export type Operation = (typeof OPERATIONS)[number];

export interface Scenario {
  name: string;
  doc: string;
  /** volumes made before the clients start */
  volumes: number;
  /** share of volumes made multiattach (0–1) */
  multiattach: number;
  weights: Partial<Record<Operation, number>>;
}

export const SCENARIO_DIR = resolve(import.meta.dirname, '../../harness/scenarios');

export function scenarioNames(): string[] {
  return readdirSync(SCENARIO_DIR)
    .filter((f) => f.endsWith('.json'))
    .map((f) => basename(f, '.json'))
    .sort();
}

/** A scenario by name (harness/scenarios/NAME.json) or by path; a bad file says what is wrong with it. */
export function loadScenario(nameOrPath: string): Scenario {
  const file = existsSync(nameOrPath) ? nameOrPath : join(SCENARIO_DIR, `${nameOrPath}.json`);
  if (!existsSync(file)) throw new Error(`no scenario ${nameOrPath}: name one of ${scenarioNames().join(', ')}, or give a file`);
  const raw = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>;
  const weights = (raw.weights ?? {}) as Record<string, unknown>;
  for (const [op, w] of Object.entries(weights)) {
    if (!(OPERATIONS as readonly string[]).includes(op))
      throw new Error(`${file}: unknown operation ${op}; operations are ${OPERATIONS.join(', ')}`);
    if (typeof w !== 'number' || w < 0) throw new Error(`${file}: the weight of ${op} must be a number ≥ 0`);
  }
  if (Object.values(weights).every((w) => w === 0)) throw new Error(`${file}: give at least one operation a weight`);
  const volumes = raw.volumes ?? 5;
  if (typeof volumes !== 'number' || !Number.isInteger(volumes) || volumes < 1)
    throw new Error(`${file}: volumes must be a whole number ≥ 1`);
  return {
    name: basename(file, '.json'),
    doc: typeof raw.doc === 'string' ? raw.doc : '',
    volumes,
    multiattach: typeof raw.multiattach === 'number' ? raw.multiattach : 0,
    weights: weights,
  };
}
