/** Test helpers for plans verified on their columns (verify-columns.ts) and on PlanItem objects. */
import type { ManifestEntry, ManifestFile, Plan } from '@hotweights/core';

/** A blake3 hash numbered `i`. */
export const hash = (i: number) => `blake3:${i.toString(16).padStart(64, '0')}`;

/**
 * A safetensors file's manifest entries: its 8-byte header, then `tensors` ([name, bytes]) of
 * shard rank `rank` back to back, hashed hash(firstHash), hash(firstHash + 1), ...
 */
export function safetensorsEntries(
  file: string,
  rank: number,
  tensors: readonly (readonly [string, number])[],
  firstHash: number,
): { entries: ManifestEntry[]; file: ManifestFile } {
  const header = { file, shard_rank: rank, file_offset: 0, nbytes: 8, dtype: null, shape: null };
  const entries: ManifestEntry[] = [
    { ...header, key: `${file}:${rank}`, tensor: file, kind: 'header', hash: hash(firstHash) },
  ];
  let offset = 8;
  for (const [name, nbytes] of tensors) {
    entries.push({
      key: `${name}:${rank}`,
      tensor: name,
      shard_rank: rank,
      kind: 'tensor',
      file,
      file_offset: offset,
      nbytes,
      dtype: 'U8',
      shape: [nbytes],
      hash: hash(firstHash + entries.length),
    });
    offset += nbytes;
  }
  return { entries, file: { path: file, size: offset, kind: 'safetensors' } };
}

/** A whole-file entry (kind `file`, shard rank 0). */
export const fileEntry = (path: string, nbytes: number, h: string): ManifestEntry => ({
  key: `${path}:0`,
  tensor: path,
  shard_rank: 0,
  kind: 'file',
  file: path,
  file_offset: 0,
  nbytes,
  dtype: null,
  shape: null,
  hash: h,
});

/** The same plan with plain PlanItem objects: checked item object by item object. */
export const asObjects = (plan: Plan): Plan => ({
  ...plan,
  buckets: plan.buckets.map((b) => ({
    bucket_id: b.bucket_id,
    size: b.size,
    consumer_ranks: b.consumer_ranks,
    items: [...b.items],
  })),
});
