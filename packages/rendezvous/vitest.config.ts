import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['@hotweights/source'] },
  ssr: { resolve: { conditions: ['@hotweights/source'], externalConditions: ['@hotweights/source'] } },
  // Generous timeouts: tests start real processes, and CI's 2 cores may be busy.
  test: {
    name: 'rendezvous',
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
});
