/**
 * Bench inputs: a base checkpoint, an all-changed one and a 10%-changed one (every 10th tensor
 * replaced), as safetensors shards of 32 MiB tensors, published with the given hash (default blake3).
 */
import { randomFillSync } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Manifest } from '@hotweights/core';
import { publish, type TensorData, writeManifest, writeSafetensors } from '@hotweights/planner';

const TENSOR_BYTES = 32 << 20;
const TENSORS_PER_SHARD = 8;

function tensor(): TensorData {
  const data = new Uint8Array(TENSOR_BYTES);
  randomFillSync(data);
  return { dtype: 'BF16', shape: [TENSOR_BYTES / 2 / 4096, 4096], data };
}

async function writeModel(dir: string, shards: number, changed: (index: number) => boolean, from?: string) {
  mkdirSync(dir, { recursive: true });
  let index = 0;
  for (let s = 0; s < shards; s++) {
    const name = `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`;
    const anyChanged = Array.from({ length: TENSORS_PER_SHARD }, (_, t) => changed(index + t)).some(Boolean);
    if (from && !anyChanged) {
      cpSync(join(from, name), join(dir, name));
      index += TENSORS_PER_SHARD;
      continue;
    }
    const tensors: Record<string, TensorData> = {};
    for (let t = 0; t < TENSORS_PER_SHARD; t++, index++) {
      tensors[`layers.${index}.weight`] = changed(index) || !from ? tensor() : await reuse(from, name, index);
    }
    await writeSafetensors(join(dir, name), tensors);
  }
}

// The unchanged tensors of a partially changed shard keep the base's bytes.
async function reuse(from: string, shard: string, index: number): Promise<TensorData> {
  const { readSafetensorsHeader } = await import('@hotweights/planner');
  const { open } = await import('node:fs/promises');
  const header = await readSafetensorsHeader(join(from, shard));
  const info = header.tensors.find((t) => t.name === `layers.${index}.weight`);
  if (!info) throw new Error(`no tensor ${index} in ${shard}`);
  const data = new Uint8Array(info.nbytes);
  const fh = await open(join(from, shard), 'r');
  await fh.read(data, 0, info.nbytes, info.fileOffset);
  await fh.close();
  return { dtype: info.dtype, shape: [...info.shape], data };
}

export interface BenchInputs {
  readonly base: string;
  readonly all: string;
  readonly ten: string;
  readonly manifests: { readonly base: Manifest; readonly all: Manifest; readonly ten: Manifest };
  readonly paths: { readonly base: string; readonly all: string; readonly ten: string };
}

/** `withAll: false` leaves the all-changed checkpoint out (its manifest is then the base's). */
export async function makeCheckpoints(
  dir: string,
  gib: number,
  hash = 'blake3',
  withAll = true,
): Promise<BenchInputs> {
  const shards = Math.max(1, Math.round((gib * 1024) / (32 * TENSORS_PER_SHARD)));
  const base = join(dir, 'base');
  const all = join(dir, 'all-changed');
  const ten = join(dir, 'ten-percent');
  // Checkpoints left by an earlier run in the same --dir are reused (only manifests are redone).
  const ready = (d: string) => existsSync(join(d, '.complete'));
  for (const [d, changed, from] of [
    [base, () => true, undefined],
    ...(withAll ? ([[all, () => true, undefined]] as const) : []),
    [ten, (i: number) => i % 10 === 3, base],
  ] as const) {
    if (ready(d)) continue;
    rmSync(d, { recursive: true, force: true });
    await writeModel(d, shards, changed, from);
    writeFileSync(join(d, '.complete'), '');
  }
  const baseManifest = await publish({ checkpoint: base, version: 'v0', modelId: 'bench', hash });
  const m = {
    base: baseManifest,
    all: withAll
      ? await publish({ checkpoint: all, version: 'v1-all', modelId: 'bench', hash })
      : baseManifest,
    ten: await publish({ checkpoint: ten, version: 'v1-ten', modelId: 'bench', hash }),
  };
  const paths = {
    base: join(dir, `m-base-${hash}.manifest`),
    all: join(dir, `m-all-${hash}.manifest`),
    ten: join(dir, `m-ten-${hash}.manifest`),
  };
  await writeManifest(m.base, paths.base);
  await writeManifest(m.all, paths.all);
  await writeManifest(m.ten, paths.ten);
  return { base, all, ten, manifests: m, paths };
}
