import { defineProject } from 'vitest/config';

export default defineProject({
  resolve: { conditions: ['@hotweights/source'] },
  ssr: { resolve: { conditions: ['@hotweights/source'], externalConditions: ['@hotweights/source'] } },
  // Generous timeout: Python (torch) cross-checks and worker threads are slow on a loaded 2-core machine.
  test: { name: 'planner', include: ['test/**/*.test.ts'], pool: 'forks', testTimeout: 120_000 },
});
