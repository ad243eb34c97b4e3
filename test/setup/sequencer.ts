/**
 * The order `npm test` starts its files in: the longest first, so that the
 * two workers finish together instead of one running a long file alone at
 * the end. Vitest orders by the last run's durations when it has them, and
 * otherwise (a fresh clone, as CI is) by file size, which put the harness
 * file (57 lines, 90 s) last, alone, for its whole run.
 *
 * The weights are each file's CPU seconds, measured alone (its whole
 * process tree, in a cgroup) on the 2-core machine, 2026-12-04. A stale
 * weight costs only time, never a result.
 */
import { relative } from 'node:path';
import { BaseSequencer, type TestSpecification } from 'vitest/node';

const MEASURED: Record<string, number> = {
  'test/concurrency/nodes.test.ts': 122,
  'test/check/harness.test.ts': 117,
  'test/cli/start.test.ts': 36,
  'test/api/keystone.test.ts': 26, // and 25 s of waiting for tokens to expire
  'test/cli/cinder.test.ts': 29,
  'test/cli/openstack.test.ts': 20,
  'test/concurrency/storm.test.ts': 23,
  'test/api/waiting.test.ts': 9, // and 13 s of waiting
  'test/db/enforcer.test.ts': 19,
};

export class LongestFirst extends BaseSequencer {
  override async sort(files: TestSpecification[]): Promise<TestSpecification[]> {
    const base = await super.sort(files);
    const weight = (f: TestSpecification) => MEASURED[relative(f.project.config.root, f.moduleId)] ?? 0;
    return base
      .map((f, i) => ({ f, i }))
      .sort((a, b) => weight(b.f) - weight(a.f) || a.i - b.i)
      .map(({ f }) => f);
  }
}
