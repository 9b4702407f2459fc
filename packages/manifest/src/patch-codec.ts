/**
 * Lossless patches of a tensor against its previous version (issue #16). One encoding, chosen by
 * measurement on RL steps (docs/PATCHES.md): `xor-brotli`, the XOR of old and new bytes (zero
 * wherever an element did not change) compressed with Node's built-in brotli at quality 1. It beat
 * sparse index/value runs at every learning rate measured (at 2-3% changed the two are within a
 * few percent of each other; at 14-55% changed, runs are 1.5-2x larger) and needs no dependency.
 */
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import type { PatchEncoding } from '@hotweights/core';
import { VerificationError } from '@hotweights/core';

export const PATCH_ENCODINGS: readonly PatchEncoding[] = ['xor-brotli'];

/** XOR of `a` and `b` (same length) into `out`: 32-bit words where all three allow it. */
function xorInto(out: Uint8Array, a: Uint8Array, b: Uint8Array): void {
  const n = out.length;
  let i = 0;
  if (out.byteOffset % 4 === 0 && a.byteOffset % 4 === 0 && b.byteOffset % 4 === 0) {
    const w = n >>> 2;
    const o32 = new Uint32Array(out.buffer, out.byteOffset, w);
    const a32 = new Uint32Array(a.buffer, a.byteOffset, w);
    const b32 = new Uint32Array(b.buffer, b.byteOffset, w);
    for (let k = 0; k < w; k++) o32[k] = (a32[k] as number) ^ (b32[k] as number);
    i = w * 4;
  }
  for (; i < n; i++) out[i] = (a[i] as number) ^ (b[i] as number);
}

/** The patch that turns `base` into `next` (same length). */
export function encodePatch(base: Uint8Array, next: Uint8Array): Uint8Array {
  if (base.length !== next.length)
    throw new RangeError(`a patch needs equal sizes (base ${base.length}, next ${next.length} bytes)`);
  const x = new Uint8Array(next.length);
  xorInto(x, base, next);
  return brotliCompressSync(x, {
    params: {
      [constants.BROTLI_PARAM_QUALITY]: 1,
      [constants.BROTLI_PARAM_SIZE_HINT]: x.length,
    },
  });
}

/**
 * Rebuilds the new tensor from `base` and a patch of `encoding`; `nbytes` is its size. Throws
 * VerificationError (naming `key`) when the patch does not decode to exactly `nbytes` bytes.
 */
export function applyPatch(
  encoding: string,
  base: Uint8Array,
  patch: Uint8Array,
  nbytes: number,
  key: string,
): Uint8Array {
  if (encoding !== 'xor-brotli')
    throw new VerificationError(
      `item ${key}: unknown patch encoding ${JSON.stringify(encoding)} (this hotweights applies ${PATCH_ENCODINGS.join(', ')})`,
      { details: { key } },
    );
  if (base.length !== nbytes)
    throw new VerificationError(
      `item ${key}: the live base has ${base.length} bytes, the patch rebuilds ${nbytes}`,
      { details: { key } },
    );
  let x: Uint8Array;
  try {
    x = brotliDecompressSync(patch, { maxOutputLength: Math.max(nbytes, 1) });
  } catch (err) {
    throw new VerificationError(`item ${key}: the patch does not decode: ${(err as Error).message}`, {
      cause: err,
      details: { key },
    });
  }
  if (x.length !== nbytes)
    throw new VerificationError(`item ${key}: the patch decodes to ${x.length} bytes, expected ${nbytes}`, {
      details: { key },
    });
  const out = new Uint8Array(nbytes);
  xorInto(out, base, x);
  return out;
}
