/**
 * Small RL-like checkpoint steps for patch tests (issue #16): bf16-shaped tensors where each
 * step flips the low byte of a few percent of the elements (what an AdamW step at a small
 * learning rate does to bf16 weights), one tensor that changes entirely (moves whole: its patch
 * would be larger), one that never changes, and a config file.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeSafetensors } from '@hotweights/planner';

export const PATCH_FILES = ['model-00001.safetensors', 'model-00002.safetensors', 'config.json'];

type Tensor = { dtype: string; shape: number[]; data: Buffer };
export type Step = Record<string, Tensor>;

const bf16 = (rows: number, cols = 256): Tensor => ({
  dtype: 'BF16',
  shape: [rows, cols],
  data: randomBytes(rows * cols * 2),
});

/** Step 0: four layer tensors, an embedding and a head. */
export function firstStep(): Step {
  return {
    'layers.0.w': bf16(64),
    'layers.0.b': bf16(1),
    'layers.1.w': bf16(64),
    'layers.1.b': bf16(1),
    embed: bf16(128),
    head: bf16(32),
  };
}

/** The next step: ~`fraction` of the layer elements nudged, embed new, head unchanged. */
export function nextStep(prev: Step, fraction = 0.03): Step {
  const out: Step = {};
  for (const [name, t] of Object.entries(prev)) {
    if (name === 'head') out[name] = t;
    else if (name === 'embed') out[name] = bf16(t.shape[0] as number);
    else {
      const data = Buffer.from(t.data);
      const elements = data.length / 2;
      const picks = randomBytes(4 * Math.max(1, Math.round(elements * fraction)));
      for (let k = 0; k < picks.length; k += 4) {
        const e = picks.readUInt32LE(k) % elements;
        data[2 * e] = (data[2 * e] as number) ^ 1; // the mantissa's last bit: one ulp
      }
      out[name] = { ...t, data };
    }
  }
  return out;
}

/** Writes a step as a checkpoint directory of two safetensors files and a config. */
export async function writeStep(dir: string, step: Step): Promise<void> {
  mkdirSync(dir, { recursive: true });
  const first: Step = {};
  const second: Step = {};
  for (const [name, t] of Object.entries(step)) (name.startsWith('layers.') ? first : second)[name] = t;
  await writeSafetensors(join(dir, PATCH_FILES[0] as string), first);
  await writeSafetensors(join(dir, PATCH_FILES[1] as string), second);
  writeFileSync(join(dir, 'config.json'), '{"layers":2}\n');
}
