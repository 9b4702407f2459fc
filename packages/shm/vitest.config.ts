import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['@hotweights/source'] },
  ssr: { resolve: { conditions: ['@hotweights/source'], externalConditions: ['@hotweights/source'] } },
  test: {
    name: 'shm',
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
