/**
 * The item-text addon (native/item-text.cc) as this package loads it: its typed binding and the
 * lazy loader. Kept apart from the writer so a test can point the loader at a folder with no
 * build and see the JavaScript fallback.
 */
import { fileURLToPath } from 'node:url';
import type { EntryCheck } from '@hotweights/manifest';
import { type LazyAddon, lazyAddon } from '@hotweights/native-loader';

/** Columns the native writer reads (kept referenced by it for its lifetime). */
export interface NativeItemColumns {
  /** Names as bytes (ASCII, 1) or as UTF-16 code units (2). */
  readonly names: Uint8Array | Uint16Array;
  readonly nameUnits: 1 | 2;
  readonly starts: Uint32Array;
  readonly shardRank: Uint32Array;
  /** One byte per entry: `t`, `h` or `f`. */
  readonly kind: Uint8Array;
  readonly file: Uint32Array;
  readonly fileOffset: Float64Array;
  readonly nbytes: Float64Array;
  readonly dtype: Int32Array;
  readonly ndim: Int32Array;
  readonly dims: Float64Array;
  readonly hash: Uint8Array;
  readonly hashBytes: number;
  /** Pre-encoded item heads per dtype index + 1, concatenated; headStarts has one more offset. */
  readonly heads: Uint8Array;
  readonly headStarts: Uint32Array;
  /** Pre-encoded item tails per file, concatenated; tailStarts has one more offset. */
  readonly tails: Uint8Array;
  readonly tailStarts: Uint32Array;
  readonly hashPrefix: Uint8Array;
  readonly bucketBytes: number;
}

/** A whole plan's item columns, how many items, the threads to use, and the sweep order and lengths. */
export type ItemSweep = [
  entry: Uint32Array,
  part: Int32Array,
  offset: Float64Array,
  nbytes: Float64Array,
  count: number,
  threads: number,
  order: Uint32Array,
  lengths: Uint32Array,
];

export interface NativeItemEncoder {
  /**
   * Writes items [from, k) with their separators into out (from outAt) and canon (from canonAt);
   * returns k. state: [new outAt, new canonAt, why it stopped (0 done, 1 item k for the JS writer,
   * 2 no room for item k)].
   */
  write(
    entry: Uint32Array,
    part: Int32Array,
    offset: Float64Array,
    nbytes: Float64Array,
    from: number,
    to: number,
    out: Uint8Array,
    outAt: number,
    canon: Uint8Array,
    canonAt: number,
    state: Float64Array,
  ): number;
  /**
   * First sweep over a whole plan's items [0, count) (see ItemBatch): `order` gets the item
   * indexes by entry, `lengths[g]` the byte length of item g's text, 0 for an item the JS writer
   * must write. Returns how many those are.
   */
  layout(...sweep: ItemSweep): number;
  /**
   * Lays out items [from, k) of a bucket whose first item is `first`: their separators written
   * into out from outAt, positions[g] set and lengths[g] bytes left for each. Returns k; state:
   * [new end of out, why it stopped (0 done, 1 item k is for the JS writer, 2 no room for it)].
   */
  place(
    lengths: Uint32Array,
    positions: Float64Array,
    from: number,
    to: number,
    first: number,
    out: Uint8Array,
    outAt: number,
    state: Float64Array,
  ): number;
  /** Second sweep: the text of every item with lengths[g] > 0 written at out[positions[g]]. */
  render(...args: [...ItemSweep, positions: Float64Array, out: Uint8Array]): void;
  /** Texts of items [from, to) of out joined by commas into dst from dstAt: the new end, or -1 (no room). */
  join(
    out: Uint8Array,
    positions: Float64Array,
    lengths: Uint32Array,
    from: number,
    to: number,
    dst: Uint8Array,
    dstAt: number,
  ): number;
}

/** What native/item-text.cc exports. */
export interface ItemTextBinding {
  ItemEncoder: new (columns: NativeItemColumns) => NativeItemEncoder;
  /** native/delta.cc: the delta's marks (see delta.ts). */
  markUnchanged(...args: DeltaMarks): void;
  /** native/packing.cc: first-fit-decreasing packing (see packing.ts); buckets, or -1. */
  packFirstFit(...args: PackFirstFit): number;
  /** native/key-order.cc: whether a stored key order is valid (see nativeKeyOrderCheck). */
  keyOrderAscends(names: Uint8Array, starts: Uint32Array, ranks: Uint32Array, order: Uint32Array): boolean;
  /** native/entries.cc: whether a manifest's entry columns are valid (see nativeEntryCheck). */
  entriesValid(...args: Parameters<EntryCheck>): boolean;
}

/** Item sizes, bucket capacity, alignment, then the placements (bucket, offset, order) filled in. */
export type PackFirstFit = [
  sizes: Float64Array,
  capacity: number,
  alignment: number,
  bucket: Uint32Array,
  offset: Float64Array,
  order: Uint32Array,
];

/** The columns the delta's marks are computed from, and the marks (the last two, filled in). */
export type DeltaMarks = [
  match: Int32Array,
  prevNbytes: Float64Array,
  nextNbytes: Float64Array,
  prevHash: Uint8Array,
  nextHash: Uint8Array,
  hashBytes: number,
  prevMatched: Uint8Array,
  unchanged: Uint8Array,
];

/** The addon of the package at `root` (this package by default), loaded on first use. */
export function itemTextAddon(
  root: string = fileURLToPath(new URL('..', import.meta.url)),
): LazyAddon<ItemTextBinding> {
  return lazyAddon<ItemTextBinding>({
    packageName: '@hotweights/planner',
    root,
    requires: ['ItemEncoder', 'markUnchanged', 'packFirstFit', 'keyOrderAscends', 'entriesValid'],
  });
}
