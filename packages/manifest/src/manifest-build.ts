/** Builds a columnar manifest from entries (publish, tests, and any Manifest to serialise). */
import { Buffer } from 'node:buffer';
import type { Manifest, ManifestEntry } from '@hotweights/core';
import { HotweightsError } from '@hotweights/core';
import { ColumnarManifest } from './columnar-manifest.js';
import { HASH_HEX_LENGTH } from './hash-algorithms.js';
import { KIND_CODE, type ManifestColumns, type ManifestMeta } from './manifest-columns.js';
import { validateColumns } from './manifest-validate.js';
import { NameColumn } from './name-column.js';

/**
 * Builds a columnar manifest from entries (any order): sorts them by file and offset, and checks
 * the invariants the loader checks (coverage, unique keys, one hash algorithm).
 */
export function buildManifest(
  meta: Omit<ManifestMeta, 'dtypes'>,
  entries: readonly ManifestEntry[],
): ColumnarManifest {
  const files = [...meta.files].sort((a, b) => compareStrings(a.path, b.path));
  const fileIndex = new Map(files.map((f, i) => [f.path, i]));
  const sorted = [...entries].sort((a, b) => {
    const fa = fileIndex.get(a.file) ?? -1;
    const fb = fileIndex.get(b.file) ?? -1;
    return fa !== fb ? fa - fb : a.file_offset - b.file_offset;
  });
  const dtypes: string[] = [];
  const dtypeIndex = new Map<string, number>();
  const cols = {
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
  const prefix = `${meta.hash_algo}:`;
  for (const e of sorted) {
    const fi = fileIndex.get(e.file);
    if (fi === undefined)
      throw new HotweightsError('HW_INTERNAL', `entry ${e.key}: file ${e.file} not listed`);
    if (!e.hash.startsWith(prefix))
      throw new HotweightsError('HW_INTERNAL', `entry ${e.key}: hash ${e.hash} is not ${meta.hash_algo}`);
    let d = -1;
    if (e.dtype !== null) {
      d = dtypeIndex.get(e.dtype) ?? -1;
      if (d < 0) {
        d = dtypes.length;
        dtypes.push(e.dtype);
        dtypeIndex.set(e.dtype, d);
      }
    }
    if (!Number.isInteger(e.shard_rank) || e.shard_rank < 0 || e.shard_rank > 0xffffffff)
      throw new HotweightsError('HW_INTERNAL', `entry ${e.key}: shard rank ${e.shard_rank} is not a u32`);
    cols.tensor.push(e.tensor);
    cols.shard_rank.push(e.shard_rank);
    cols.kind.push(KIND_CODE[e.kind]);
    cols.file.push(fi);
    cols.file_offset.push(e.file_offset);
    cols.nbytes.push(e.nbytes);
    cols.dtype.push(d);
    cols.ndim.push(e.shape === null ? -1 : e.shape.length);
    if (e.shape) cols.dims.push(...e.shape);
    cols.hash.push(e.hash.slice(prefix.length));
  }
  const hashBytes = (HASH_HEX_LENGTH[meta.hash_algo] ?? 0) / 2;
  const hash = Buffer.alloc(cols.hash.length * hashBytes);
  for (const [i, hex] of cols.hash.entries()) {
    if (hex.length !== hashBytes * 2 || !/^[0-9a-f]*$/.test(hex))
      throw new HotweightsError(
        'HW_INTERNAL',
        `entry ${cols.tensor[i]}: hash ${hex} is not ${hashBytes * 2} lowercase hex digits (${meta.hash_algo})`,
      );
    hash.write(hex, i * hashBytes, 'hex');
  }
  const columns: ManifestColumns = {
    tensor: NameColumn.from(cols.tensor),
    shard_rank: Uint32Array.from(cols.shard_rank),
    kind: cols.kind.join(''),
    file: Uint32Array.from(cols.file),
    file_offset: Float64Array.from(cols.file_offset),
    nbytes: Float64Array.from(cols.nbytes),
    dtype: Int32Array.from(cols.dtype),
    ndim: Int32Array.from(cols.ndim),
    dims: Float64Array.from(cols.dims),
    hash,
  };
  const full: ManifestMeta = { ...meta, files, dtypes };
  return validateColumns(full, columns, undefined);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Columns of any Manifest (a ColumnarManifest's own, or rebuilt from its entries). */
export function toColumnar(manifest: Manifest): ColumnarManifest {
  if (manifest instanceof ColumnarManifest) return manifest;
  const entries: ManifestEntry[] = [];
  for (let i = 0; i < manifest.size; i++) entries.push(manifest.entry(i));
  return buildManifest(
    {
      version: manifest.version,
      model_id: manifest.model_id,
      created_at: manifest.created_at,
      checkpoint_root: manifest.checkpoint_root ?? null,
      hash_algo: manifest.hash_algo,
      files: manifest.files,
    },
    entries,
  );
}
