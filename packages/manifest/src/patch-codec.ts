/**
 * Lossless patches of a tensor against its previous version (issue #16). Two encodings, chosen
 * per tensor by how many bytes changed (measurements in docs/PATCHES.md):
 *
 * - `sparse-brotli`: the changed byte runs, as (gap, length) varints and the new bytes, brotli
 *   quality 1. Rebuilding copies the base and writes only the changed bytes, so it is the
 *   fastest to land where few bytes changed (an RL step at a small learning rate).
 * - `xor-brotli`: the XOR of old and new bytes (zero wherever nothing changed), brotli quality 1.
 *   Smaller once many bytes changed (runs then cost more than the bytes), at the price of a pass
 *   over the whole tensor when rebuilding.
 *
 * Both use Node's built-in brotli: no dependency, nothing to build.
 */
import { brotliCompressSync, brotliDecompressSync, constants } from 'node:zlib';
import type { PatchEncoding } from '@hotweights/core';
import { VerificationError } from '@hotweights/core';

export const PATCH_ENCODINGS: readonly PatchEncoding[] = ['sparse-brotli', 'xor-brotli'];

/** Below this share of changed bytes, runs are smaller than the XOR (measured: 2-3% vs 14%). */
const SPARSE_BELOW = 0.08;
/** Unchanged bytes between two changed ones that are carried in the run rather than a new run. */
const MERGE_GAP = 3;

function words(a: Uint8Array): Uint32Array | null {
  return a.byteOffset % 4 === 0 ? new Uint32Array(a.buffer, a.byteOffset, a.length >>> 2) : null;
}

/** XOR of `a` and `b` (same length) into `out`: 32-bit words where all three allow it. */
function xorInto(out: Uint8Array, a: Uint8Array, b: Uint8Array): void {
  const n = out.length;
  let i = 0;
  const o32 = words(out);
  const a32 = words(a);
  const b32 = words(b);
  if (o32 && a32 && b32) {
    for (let k = 0; k < o32.length; k++) o32[k] = (a32[k] as number) ^ (b32[k] as number);
    i = o32.length * 4;
  }
  for (; i < n; i++) out[i] = (a[i] as number) ^ (b[i] as number);
}

/** Bytes that differ (an upper bound: whole differing words count 4), skipping equal words. */
function changedBytes(a: Uint8Array, b: Uint8Array): number {
  let n = 0;
  let i = 0;
  const a32 = words(a);
  const b32 = words(b);
  if (a32 && b32) {
    for (let k = 0; k < a32.length; k++) if (a32[k] !== b32[k]) n += 4;
    i = a32.length * 4;
  }
  for (; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

function putVarint(out: Uint8Array, at: number, v: number): number {
  while (v >= 0x80) {
    out[at++] = (v % 0x80) | 0x80;
    v = Math.floor(v / 0x80);
  }
  out[at++] = v;
  return at;
}

/** The runs of `next` that differ from `base`: (gap, length, bytes)… */
function sparseRuns(base: Uint8Array, next: Uint8Array, changed: number): Uint8Array {
  const n = next.length;
  // Per changed byte at most: itself, the unchanged bytes merged before it, two 8-byte varints.
  const out = new Uint8Array(changed * (MERGE_GAP + 17) + 16);
  let at = 0;
  let last = 0;
  let i = 0;
  const a32 = words(base);
  const b32 = words(next);
  while (i < n) {
    // Skip equal words quickly, then equal bytes.
    if (a32 && b32 && i % 4 === 0) {
      let k = i >>> 2;
      while (k < a32.length && a32[k] === b32[k]) k++;
      i = Math.min(k * 4, n);
      if (i >= n) break;
    }
    if (base[i] === next[i]) {
      i++;
      continue;
    }
    let j = i + 1;
    for (;;) {
      while (j < n && base[j] !== next[j]) j++;
      let k = j;
      while (k < n && k - j < MERGE_GAP && base[k] === next[k]) k++;
      if (k < n && k - j < MERGE_GAP) {
        j = k;
        continue;
      }
      break;
    }
    at = putVarint(out, at, i - last);
    at = putVarint(out, at, j - i);
    out.set(next.subarray(i, j), at);
    at += j - i;
    last = j;
    i = j;
  }
  return out.subarray(0, at);
}

function brotli(bytes: Uint8Array): Uint8Array {
  return brotliCompressSync(bytes, {
    params: { [constants.BROTLI_PARAM_QUALITY]: 1, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  });
}

/** The patch that turns `base` into `next` (same length), and its encoding. */
export function encodePatch(
  base: Uint8Array,
  next: Uint8Array,
): { readonly encoding: PatchEncoding; readonly bytes: Uint8Array } {
  if (base.length !== next.length)
    throw new RangeError(`a patch needs equal sizes (base ${base.length}, next ${next.length} bytes)`);
  const changed = changedBytes(base, next);
  if (changed <= SPARSE_BELOW * next.length)
    return { encoding: 'sparse-brotli', bytes: brotli(sparseRuns(base, next, changed)) };
  const x = new Uint8Array(next.length);
  xorInto(x, base, next);
  return { encoding: 'xor-brotli', bytes: brotli(x) };
}

function undecodable(key: string, why: string, cause?: unknown): VerificationError {
  return new VerificationError(`item ${key}: the patch does not decode: ${why}`, {
    ...(cause ? { cause } : {}),
    details: { key },
  });
}

/** Applies decoded runs to a copy of `base`. */
function applyRuns(base: Uint8Array, runs: Uint8Array, key: string, out: Uint8Array): Uint8Array {
  if (out !== base) out.set(base);
  let at = 0;
  let pos = 0;
  const varint = (): number => {
    let v = 0;
    let scale = 1;
    for (;;) {
      if (at >= runs.length) throw undecodable(key, 'a run is cut short');
      const b = runs[at++] as number;
      v += (b & 0x7f) * scale;
      if (b < 0x80) return v;
      scale *= 0x80;
      if (scale > 2 ** 49) throw undecodable(key, 'a run length overflows');
    }
  };
  while (at < runs.length) {
    pos += varint();
    const len = varint();
    if (pos + len > out.length || at + len > runs.length)
      throw undecodable(key, `a run ends past the tensor (${pos + len} > ${out.length} bytes)`);
    // An RL step's runs are mostly a byte or two: a view per run cost more than the bytes.
    if (len > 32) out.set(runs.subarray(at, at + len), pos);
    else for (let k = 0; k < len; k++) out[pos + k] = runs[at + k] as number;
    at += len;
    pos += len;
  }
  return out;
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
  /** Where the rebuilt tensor goes (nbytes long; may be `base` itself), default a new buffer. */
  into?: Uint8Array,
): Uint8Array {
  if (encoding !== 'xor-brotli' && encoding !== 'sparse-brotli')
    throw new VerificationError(
      `item ${key}: unknown patch encoding ${JSON.stringify(encoding)} (this hotweights applies ${PATCH_ENCODINGS.join(', ')})`,
      { details: { key } },
    );
  if (base.length !== nbytes)
    throw new VerificationError(
      `item ${key}: the live base has ${base.length} bytes, the patch rebuilds ${nbytes}`,
      {
        details: { key },
      },
    );
  let decoded: Uint8Array;
  try {
    // Runs are at most the changed bytes plus their varints: never more than twice the tensor.
    decoded = brotliDecompressSync(patch, { maxOutputLength: Math.max(2 * nbytes + 64, 1) });
  } catch (err) {
    throw undecodable(key, (err as Error).message, err);
  }
  if (into !== undefined && into.length !== nbytes)
    throw new RangeError(`item ${key}: the rebuilt tensor's buffer has ${into.length} bytes, not ${nbytes}`);
  const out = into ?? new Uint8Array(nbytes);
  if (encoding === 'sparse-brotli') return applyRuns(base, decoded, key, out);
  if (decoded.length !== nbytes)
    throw new VerificationError(
      `item ${key}: the patch decodes to ${decoded.length} bytes, expected ${nbytes}`,
      {
        details: { key },
      },
    );
  xorInto(out, base, decoded);
  return out;
}
