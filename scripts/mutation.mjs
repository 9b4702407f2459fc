#!/usr/bin/env node
/**
 * `npm run test:mutation [-- <package>...] [-- --mutate <path>] [other stryker flags]`
 *
 * Runs Stryker (stryker.config.mjs) once per package, one package at a time, from the package's
 * folder. No package named: every package in the config's MODULES. `--mutate packages/<p>/src/x.ts`
 * picks that package and mutates only that file. Other flags (`--force`, `--concurrency 2`) go to
 * Stryker unchanged.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MODULES } from '../stryker.config.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const packages = [];
const passed = [];
for (let i = 0; i < args.length; i++) {
  const a = args[i];
  if (a === '--mutate' || a === '-m') {
    const glob = args[++i];
    const m = /^(?:\.\/)?packages\/([^/]+)\/(.+)$/.exec(glob ?? '');
    if (!m || !(m[1] in MODULES)) {
      console.error(`--mutate ${glob}: give a path under packages/<${Object.keys(MODULES).join('|')}>/`);
      process.exit(2);
    }
    packages.push(m[1]);
    passed.push('--mutate', m[2]);
  } else if (a in MODULES) packages.push(a);
  else if (a.startsWith('-')) passed.push(a);
  else if (/^\d+$/.test(a) && passed.length) passed.push(a);
  else {
    console.error(`${a}: not a mutated package (${Object.keys(MODULES).join(', ')})`);
    process.exit(2);
  }
}
const stryker = join(root, 'node_modules/.bin/stryker');
if (!existsSync(stryker)) {
  console.error('stryker is not installed: run npm ci at the repository root');
  process.exit(2);
}
// Several suites check digests and layouts against Python (the project's .venv): without it the
// initial test run fails and Stryker reports nothing, so say how to make it first.
if (!existsSync(join(root, '.venv', 'bin', 'python'))) {
  console.error(
    'no .venv/bin/python: run `bash scripts/setup-python.sh` once, then npm run test:mutation again',
  );
  process.exit(2);
}
let failed = 0;
for (const pkg of packages.length ? [...new Set(packages)] : Object.keys(MODULES)) {
  const cwd = join(root, 'packages', pkg);
  console.log(`\n== mutation testing ${relative(root, cwd)} ==`);
  const r = spawnSync(stryker, ['run', join(root, 'stryker.config.mjs'), ...passed], {
    cwd,
    stdio: 'inherit',
  });
  if (r.status !== 0) failed++;
}
process.exit(failed ? 1 : 0);
