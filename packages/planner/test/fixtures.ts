/** Test helpers: real checkpoints written with writeSafetensors, and Python cross-checks. */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TensorData } from '@hotweights/planner';

export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
export const PYTHON = join(REPO_ROOT, '.venv/bin/python');

export function tempDir(prefix: string): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), `hw-planner-${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Deterministic bytes: a simple LCG so tests need no randomness. */
export function bytes(n: number, seed: number): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

export function tensor(dtype: string, shape: number[], seed: number, elemBytes: number): TensorData {
  const n = shape.reduce((a, b) => a * b, 1) * elemBytes;
  return { dtype, shape, data: bytes(n, seed) };
}

/** Runs Python from the project venv; returns stdout. */
export function python(code: string, args: string[] = []): string {
  return execFileSync(PYTHON, ['-c', code, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}
