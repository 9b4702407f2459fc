import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['@hotweights/source'] },
  ssr: { resolve: { conditions: ['@hotweights/source'], externalConditions: ['@hotweights/source'] } },
  test: {
    name: 'transport-cuda-ipc',
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Every test starts real mpirun jobs; the pack test also builds, packs and installs.
    testTimeout: 120_000,
    hookTimeout: 240_000,
  },
});
