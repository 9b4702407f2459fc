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

/** A BLAKE3-shaped hash of one repeated hex digit: distinct per letter, valid for the schema. */
export const fakeHash = (c: string): string => `blake3:${c.repeat(64)}`;

/** The two whole files the format tests carry beside a safetensors file: 10 bytes and an empty one. */
export const WHOLE_FILES = [
  { path: 'config.json', size: 10, kind: 'file' },
  { path: 'empty file', size: 0, kind: 'file' },
] as const;

/** The entries of WHOLE_FILES, hashed `e` and `f`. */
export function wholeFileEntries(): ManifestEntry[] {
  return WHOLE_FILES.map(({ path, size }, i) =>
    entryOf({
      tensor: path,
      file: path,
      kind: 'file',
      at: 0,
      nbytes: size,
      dtype: null,
      shape: null,
      hash: fakeHash('ef'[i] as string),
    }),
  );
}
