// @ts-check
/**
 * Mutation testing (StrykerJS 9, vitest runner) of the modules that guard users' data.
 * Run through `npm run test:mutation` (scripts/mutation.mjs), which starts Stryker once per package
 * with that package as the working directory, so each module is tested by its own package's vitest
 * project (its `vitest.config.ts`, with the `@hotweights/source` condition) and only by the tests
 * that import it (`vitest.related`).
 *
 * `inPlace`: the packages import themselves and each other through workspace symlinks in
 * node_modules (`@hotweights/adapter-directory` -> packages/adapter-directory); a Stryker sandbox
 * copy would resolve those to the unmutated originals and every mutant would survive. In place,
 * Stryker writes the instrumented source into src/ and restores it when it ends (also on Ctrl-C):
 * do not commit while it runs.
 *
 * `incremental`: results are kept per package in reports/mutation/<package>.incremental.json, which
 * is committed, so a re-run (here or from a fresh clone) tests only mutants whose code or tests
 * changed since; `--force` re-runs all.
 */
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = dirname(fileURLToPath(import.meta.url));
const pkg = basename(process.cwd());

/** Package -> the modules mutated in it (paths relative to the package). */
export const MODULES = {
  manifest: [
    'src/manifest-load.ts',
    'src/plan-io.ts',
    'src/manifest-digest.ts',
    'src/manifest-file-digest.ts',
    'src/digest-check.ts',
    'src/manifest-binary.ts',
    'src/manifest-validate.ts',
    'src/schema-check.ts',
  ],
  planner: ['src/verify.ts', 'src/verify-columns.ts'],
  runtime: ['src/item-verifier.ts', 'src/commit-vote.ts', 'src/checkpoint-reader.ts'],
  coordinator: ['src/service/*.ts', 'src/digest.ts'],
  'adapter-directory': ['src/directory-adapter.ts', 'src/preparation.ts', 'src/layout.ts'],
  shm: ['src/drop-exchange.ts'],
};

/** @type {import('@stryker-mutator/api/core').PartialStrykerOptions} */
export default {
  packageManager: 'npm',
  testRunner: 'vitest',
  plugins: ['@stryker-mutator/vitest-runner'],
  vitest: { configFile: 'vitest.config.ts', related: true },
  coverageAnalysis: 'perTest',
  inPlace: true,
  incremental: true,
  incrementalFile: join(root, 'reports/mutation', `${pkg}.incremental.json`),
  mutate: MODULES[/** @type {keyof typeof MODULES} */ (pkg)] ?? [],
  // The machine this runs on is shared; one test process at a time unless told otherwise.
  concurrency: 1,
  // Tests spawn real processes (redis-server, mpirun, workers): be patient before calling a timeout.
  timeoutMS: 60_000,
  timeoutFactor: 3,
  reporters: ['clear-text', 'progress', 'html', 'json'],
  htmlReporter: { fileName: join(root, 'reports/mutation', `${pkg}.html`) },
  jsonReporter: { fileName: join(root, 'reports/mutation', `${pkg}.json`) },
  tempDirName: join(root, '.stryker-tmp'),
  cleanTempDir: 'always',
  thresholds: { high: 90, low: 85, break: null },
};
