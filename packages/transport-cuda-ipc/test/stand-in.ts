/**
 * Builds the CUDA driver stand-in (test/stand-in/cuda_standin.c: a TEST DOUBLE of the driver API
 * over host memory, not CUDA) with gcc into build/stand-in/, once per source change, and gives the
 * environment that points the package at it.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, renameSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const SOURCE = fileURLToPath(new URL('./stand-in/cuda_standin.c', import.meta.url));
const OUT_DIR = fileURLToPath(new URL('../build/stand-in', import.meta.url));
export const STAND_IN = join(OUT_DIR, 'libcuda-standin.so');

function fresh(): boolean {
  try {
    return statSync(STAND_IN).mtimeMs >= statSync(SOURCE).mtimeMs;
  } catch {
    return false;
  }
}

/** Path of the built stand-in library. */
export function standInLibrary(): string {
  if (fresh()) return STAND_IN;
  mkdirSync(OUT_DIR, { recursive: true });
  // Built under a private name and renamed: test files build it in parallel.
  const tmp = `${STAND_IN}.${process.pid}.tmp`;
  execFileSync('gcc', [
    '-std=c11',
    '-O2',
    '-Wall',
    '-Wextra',
    '-Werror',
    '-shared',
    '-fPIC',
    '-o',
    tmp,
    SOURCE,
    '-lpthread',
    '-lrt',
  ]);
  renameSync(tmp, STAND_IN);
  return STAND_IN;
}

/** Environment for processes that should use the stand-in (plus fault-injection variables). */
export function standInEnv(extra: Record<string, string> = {}): Record<string, string> {
  return { HOTWEIGHTS_CUDA_LIBRARY: standInLibrary(), ...extra };
}
