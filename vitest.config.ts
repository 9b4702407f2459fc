import { defineConfig } from 'vitest/config';

// Tests import packages from their TypeScript sources (the `@hotweights/source` export
// condition), so no build is needed to run them. Packages with native addons or child processes
// use the forks pool.
export default defineConfig({
  resolve: { conditions: ['@hotweights/source'] },
  ssr: { resolve: { conditions: ['@hotweights/source'], externalConditions: ['@hotweights/source'] } },
  test: {
    pool: 'forks',
    testTimeout: 60_000,
    hookTimeout: 60_000,
    projects: ['packages/*', 'templates/*', 'tools/*'],
  },
});
