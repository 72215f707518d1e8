import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    environment: 'node',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    pool: 'forks',
    // Two files at a time. Vitest's default on this 2-core machine (and CI's) is one, and most test files spend
    // their time waiting on real processes and real time: two at once took the suite from 489 s to 299 s,
    // every test passing. A test that depends on having the machine to itself is wrong on a shared CI runner anyway.
    maxWorkers: 2,
    reporters: ['default', './test/support/summary-reporter.ts'],
  },
});
