/** One manifest entry of shard rank 0 keyed `<tensor>:0`, as the manifest tests build them. */
import type { ManifestEntry } from '@hotweights/core';

export interface EntryFields {
  readonly tensor: string;
  readonly file: string;
  readonly kind: ManifestEntry['kind'];
  /** file_offset */
  readonly at: number;
  readonly nbytes: number;
  readonly dtype: string | null;
  readonly shape: number[] | null;
  readonly hash: string;
}

export function entryOf({ tensor, file, kind, at, nbytes, dtype, shape, hash }: EntryFields): ManifestEntry {
  return {
    key: `${tensor}:0`,
    tensor,
    shard_rank: 0,
    kind,
    file,
    file_offset: at,
    nbytes,
    dtype,
    shape,
    hash,
  };
}
