/** Real safetensors checkpoints for the adapter tests: a base and a fine-tune of some tensors. */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
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
