/**
 * Builds the stand-in device libraries (test doubles of NCCL and the CUDA runtime, see
 * test/standin/*.c) with gcc into a temporary directory, and the environment that points the
 * package at them.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/native.js';

export interface Standins {
  readonly dir: string;
  readonly nccl: string;
  readonly cudart: string;
  /** HOTWEIGHTS_NCCL_LIBRARY and HOTWEIGHTS_CUDART_LIBRARY naming the stand-ins. */
  readonly env: Record<string, string>;
  remove(): void;
}

export function buildStandins(): Standins {
  const dir = mkdtempSync(join(tmpdir(), 'hw-nccl-standin-'));
  const build = (source: string, out: string) => {
    execFileSync('gcc', [
      '-shared',
      '-fPIC',
      '-O2',
      '-Wall',
      '-Werror',
      '-o',
      join(dir, out),
      join(PACKAGE_ROOT, 'test/standin', source),
      '-lpthread',
    ]);
    return join(dir, out);
  };
  const nccl = build('nccl-standin.c', 'libnccl-standin.so.2');
  const cudart = build('cudart-standin.c', 'libcudart-standin.so.12');
  return {
    dir,
    nccl,
    cudart,
    env: { HOTWEIGHTS_NCCL_LIBRARY: nccl, HOTWEIGHTS_CUDART_LIBRARY: cudart },
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
