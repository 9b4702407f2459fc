/**
 * The item-text addon (native/item-text.cc) as this package loads it: its typed binding and the
 * lazy loader. Kept apart from the writer so a test can point the loader at a folder with no
 * build and see the JavaScript fallback.
 */
import { fileURLToPath } from 'node:url';
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
  readonly dimsStart: Uint32Array;
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
}

/** What native/item-text.cc exports. */
export interface ItemTextBinding {
  ItemEncoder: new (columns: NativeItemColumns) => NativeItemEncoder;
}

/** The addon of the package at `root` (this package by default), loaded on first use. */
export function itemTextAddon(
  root: string = fileURLToPath(new URL('..', import.meta.url)),
): LazyAddon<ItemTextBinding> {
  return lazyAddon<ItemTextBinding>({ packageName: '@hotweights/planner', root, requires: ['ItemEncoder'] });
}
