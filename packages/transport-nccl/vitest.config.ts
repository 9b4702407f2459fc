import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['@hotweights/source'] },
  ssr: { resolve: { conditions: ['@hotweights/source'], externalConditions: ['@hotweights/source'] } },
  test: {
    name: 'transport-nccl',
    include: ['test/**/*.test.ts'],
    pool: 'forks',
    // Tests start multi-process jobs over the stand-in device libraries; the pack test also builds, packs and installs.
    testTimeout: 120_000,
    hookTimeout: 240_000,
  },
});
