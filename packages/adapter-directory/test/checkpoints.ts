/** Real safetensors checkpoints for the adapter tests: a base and a fine-tune of some tensors. */
import { randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan, PlanBucket } from '@hotweights/core';
import { writeSafetensors } from '@hotweights/planner';

export type Tensors = Record<string, { dtype: string; shape: number[]; data: Uint8Array }>;

export function randomTensors(names: readonly string[], rows: number): Tensors {
  const out: Tensors = {};
  for (const n of names) out[n] = { dtype: 'F32', shape: [rows, 64], data: randomBytes(rows * 64 * 4) };
  return out;
}

export async function writeCheckpoint(
  root: string,
  files: Record<string, Tensors>,
  extra: Record<string, string> = {},
) {
  mkdirSync(root, { recursive: true });
  for (const [name, tensors] of Object.entries(files)) await writeSafetensors(join(root, name), tensors);
  for (const [name, text] of Object.entries(extra)) writeFileSync(join(root, name), text);
}

/** A bucket's bytes as staging holds them: each item read from the checkpoint the plan names. */
export function bytesOf(plan: Plan, bucket: PlanBucket): Uint8Array {
  const out = new Uint8Array(bucket.size);
  for (const item of bucket.items) {
    const fd = openSync(join(plan.source.root, item.uri), 'r');
    try {
      readSync(fd, out, item.offset, item.nbytes, item.file_offset);
    } finally {
      closeSync(fd);
    }
  }
  return out;
}
