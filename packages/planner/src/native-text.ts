/**
 * The native item-text writer (native/item-text.cc): writes a bucket's items from the columns in
 * one call, the same bytes as ItemWriter.write. Optional: when the addon does not load (no
 * prebuild for this platform and no compiler at install time), plans are written by the JS writer,
 * byte for byte the same, only slower; `nativeItemTextUnavailableReason()` says why.
 */
import type { EntryCheck, KeyOrderCheck } from '@hotweights/manifest';
import {
  type DeltaMarks,
  itemTextAddon,
  type NativeItemColumns,
  type NativeItemEncoder,
  type PackFirstFit,
} from './item-text-addon.js';

export type { NativeItemColumns, NativeItemEncoder } from './item-text-addon.js';

const addon = itemTextAddon();

/** The native encoder for these columns, or undefined when the addon did not load. */
export function nativeItemEncoder(columns: NativeItemColumns): NativeItemEncoder | undefined {
  const l = addon.tryLoad();
  return 'binding' in l ? new l.binding.ItemEncoder(columns) : undefined;
}

/**
 * The delta's marks (see delta.ts) computed by the addon; false, marking nothing, when it did not
 * load.
 */
export function nativeMarkUnchanged(...args: DeltaMarks): boolean {
  const l = addon.tryLoad();
  if (!('binding' in l)) return false;
  l.binding.markUnchanged(...args);
  return true;
}

/**
 * First-fit-decreasing packing by the addon (see packing.ts): the number of buckets, with bucket,
 * offset and order filled in; -1 when the addon did not load or left the sizes to the JS packer.
 */
export function nativePackFirstFit(...args: PackFirstFit): number {
  const l = addon.tryLoad();
  return 'binding' in l ? l.binding.packFirstFit(...args) : -1;
}

/**
 * A manifest's stored key order checked by the addon (for useKeyOrderCheck of
 * @hotweights/manifest): true only for a valid order; false when it is not, or the addon did not
 * load (the manifest package then checks it itself, and says what is wrong).
 */
export const nativeKeyOrderCheck: KeyOrderCheck = (names, starts, ranks, order) => {
  const l = addon.tryLoad();
  return 'binding' in l && l.binding.keyOrderAscends(names, starts, ranks, order) === true;
};

/**
 * A manifest's entry columns checked by the addon (for useEntryCheck of @hotweights/manifest):
 * true only for valid columns; false when they are not, or the addon did not load (the manifest
 * package then checks them itself, and says what is wrong).
 */
export const nativeEntryCheck: EntryCheck = (...args) => {
  const l = addon.tryLoad();
  return 'binding' in l && l.binding.entriesValid(...args) === true;
};

/** True when plan items are written natively on this machine. */
export function nativeItemTextAvailable(): boolean {
  return addon.unavailableReason() === undefined;
}

/** Why the native writer is not used (undefined when it is): places searched and the fix. */
export function nativeItemTextUnavailableReason(): string | undefined {
  return addon.unavailableReason();
}
