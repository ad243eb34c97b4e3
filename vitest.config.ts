import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    globalSetup: ['test/setup/global.ts'],
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // .ci/run reads the JSON report to print its "N passed, M failed" line.
    reporters: ['default', ['json', { outputFile: '.test-results.json' }]],
  },
});
