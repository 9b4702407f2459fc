/**
 * Synthetic manifests shaped like real sharded checkpoints: safetensors files of 100 tensors each
 * (a header entry, then tensors with 2-D shapes and realistic names). `changedEvery` makes the
 * "next" version differ in every k-th tensor hash.
 */

import type { ManifestFile } from '@hotweights/core';
import { ColumnarManifest, type ManifestColumns, type ManifestMeta, NameColumn } from '@hotweights/manifest';

export function syntheticManifest(
  entries: number,
  version: string,
  opts: { changedEvery?: number; seed?: number } = {},
): ColumnarManifest {
  const perFile = 101; // header + 100 tensors
  const fileCount = Math.ceil(entries / perFile);
  const files: ManifestFile[] = [];
  const c = {
    tensor: [] as string[],
    shard_rank: [] as number[],
    kind: [] as string[],
    file: [] as number[],
    file_offset: [] as number[],
    nbytes: [] as number[],
    dtype: [] as number[],
    ndim: [] as number[],
    dims: [] as number[],
    hash: [] as string[],
  };
  const hex = (n: number, salt: number) => {
    const h = ((n * 2654435761) ^ salt) >>> 0;
    return h.toString(16).padStart(8, '0').repeat(8);
  };
  let made = 0;
  for (let f = 0; f < fileCount && made < entries; f++) {
    const path = `model-${String(f + 1).padStart(5, '0')}-of-${String(fileCount).padStart(5, '0')}.safetensors`;
    let offset = 0;
    const headerBytes = 8 + 12_000;
    const push = (tensor: string, kind: string, nbytes: number, dims: number[] | null, i: number) => {
      c.tensor.push(tensor);
      c.shard_rank.push(0);
      c.kind.push(kind);
      c.file.push(f);
      c.file_offset.push(offset);
      c.nbytes.push(nbytes);
      c.dtype.push(dims ? 0 : -1);
      c.ndim.push(dims ? dims.length : -1);
      if (dims) c.dims.push(...dims);
      const changed = opts.changedEvery && i % opts.changedEvery === 0 ? 1 : 0;
      c.hash.push(hex(i, (opts.seed ?? 0) + changed));
      offset += nbytes;
      made++;
    };
    push(path, 'h', headerBytes, null, made);
    for (let t = 0; t < perFile - 1 && made < entries; t++) {
      const rows = 64 + ((made * 31) % 4096);
      const cols = 128;
      push(`model.layers.${f}.block.${t}.weight`, 't', rows * cols * 2, [rows, cols], made);
    }
    files.push({ path, size: offset, kind: 'safetensors' });
  }
  const meta: ManifestMeta = {
    version,
    model_id: 'bench/model',
    created_at: new Date().toISOString(),
    hash_algo: 'blake3',
    files,
    dtypes: ['BF16'],
  };
  const columns: ManifestColumns = {
    tensor: NameColumn.from(c.tensor),
    shard_rank: Uint32Array.from(c.shard_rank),
    kind: c.kind.join(''),
    file: Uint32Array.from(c.file),
    file_offset: Float64Array.from(c.file_offset),
    nbytes: Float64Array.from(c.nbytes),
    dtype: Int32Array.from(c.dtype),
    ndim: Int32Array.from(c.ndim),
    dims: Float64Array.from(c.dims),
    hash: Buffer.from(c.hash.join(''), 'hex'),
  };
  return new ColumnarManifest(meta, columns);
}
