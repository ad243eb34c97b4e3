import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    pool: 'forks',
    // Both cores: the suite is mostly waiting (on PostgreSQL, child processes, Keystone, the CLIs),
    // and its tests wait on events, not on time, so two files at once stay green: 289 s against
    // 480–590 s one file at a time, which was close to the ten minutes allowed.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // .ci/run reads the JSON report to print its "N passed, M failed" line.
    reporters: ['default', ['json', { outputFile: '.test-results.json' }]],
  },
});
