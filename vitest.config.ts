import { defineConfig } from 'vitest/config';
import { LongestFirst } from './test/setup/sequencer.ts';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The failover test (etcd, Patroni, two PostgreSQL servers, three nodes under load) is not
    // in npm test: beside the other files it took the whole machine (npm test 268 → 490 s, and a
    // Keystone call timed out). .ci/run runs it on its own, after Tempest: npm run test:failover.
    exclude: process.env.VOLSTATE_FAILOVER_TEST ? [] : ['test/concurrency/failover.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    pool: 'forks',
    // Each of the two workers runs its files one after another in one process, importing
    // fastify, postgres.js, xstate and the rest once rather than once per file (48 files):
    // vitest's import time 68 s → 15 s, npm test 355 s → 298 s on a fresh clone (2026-12-06).
    // The files share no state that matters: none mocks a module or changes process.env or a
    // global, each makes its own app, database and metrics registry. The stress runs
    // (npm run test:stress) are what would show a file disturbing the next.
    isolate: false,
    sequence: { sequencer: LongestFirst },
    // Both cores: the suite is mostly waiting (on PostgreSQL, child processes, Keystone, the CLIs),
    // and its tests wait on events, not on time, so two files at once stay green: 289 s against
    // 480–590 s one file at a time, which was close to the ten minutes allowed.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // .ci/run reads the JSON report to print its "N passed, M failed" line.
    // The failover test's run (npm run test:failover) writes its own, counted by .ci/run too.
    // npm run test:stress reads each run's from VOLSTATE_TEST_REPORT.
    reporters: [
      process.env.VOLSTATE_TEST_REPORTER ?? 'default',
      [
        'json',
        {
          outputFile:
            process.env.VOLSTATE_TEST_REPORT ?? (process.env.VOLSTATE_FAILOVER_TEST ? '.failover-results.json' : '.test-results.json'),
        },
      ],
    ],
  },
});
