/**
 * The native item-text writer (native/item-text.cc): writes a bucket's items from the columns in
 * one call, the same bytes as ItemWriter.write. Optional: when the addon does not load (no
 * prebuild for this platform and no compiler at install time), plans are written by the JS writer,
 * byte for byte the same, only slower; `nativeItemTextUnavailableReason()` says why.
 */
import { fileURLToPath } from 'node:url';
import { requireAddon } from './load-addon.js';

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

interface Binding {
  ItemEncoder: new (columns: NativeItemColumns) => NativeItemEncoder;
}

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

type Loaded = { readonly binding: Binding } | { readonly reason: string };

/** Loads the addon of the package at `root` (node-gyp-build: build/Release, else prebuilds/). */
export function loadItemTextBinding(root: string = PACKAGE_ROOT): Loaded {
  try {
    const binding = requireAddon(root) as Binding;
    if (typeof binding.ItemEncoder !== 'function') return { reason: `${root}: the addon has no ItemEncoder` };
    return { binding };
  } catch (err) {
    return { reason: `native plan-text writer not loadable: ${(err as Error).message}` };
  }
}

let loaded: Loaded | undefined;

function current(): Loaded {
  loaded ??= loadItemTextBinding();
  return loaded;
}

/** The native encoder for these columns, or undefined when the addon did not load. */
export function nativeItemEncoder(columns: NativeItemColumns): NativeItemEncoder | undefined {
  const l = current();
  return 'binding' in l ? new l.binding.ItemEncoder(columns) : undefined;
}

/** True when plan items are written natively on this machine. */
export function nativeItemTextAvailable(): boolean {
  return 'binding' in current();
}

/** Why the native writer is not used (undefined when it is). */
export function nativeItemTextUnavailableReason(): string | undefined {
  const l = current();
  return 'reason' in l ? l.reason : undefined;
}
