import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // test/*.test-d.ts: type tests, compiled by tsc (test/tsconfig.json) as part of every run.
    typecheck: { enabled: true, include: ['test/**/*.test-d.ts'], tsconfig: './test/tsconfig.json' },
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 30_000,
  },
});
