import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The browser tests load the bundle the gateway serves: build it once per run.
    globalSetup: ['test/support/build-dashboard.ts'],
    // Integration tests run real brokers and HTTP servers; 2 cores, so at most 2 files at once.
    pool: 'forks',
    maxWorkers: 2,
    testTimeout: 30_000,
    hookTimeout: 30_000,
    reporters: ['default'],
  },
});
