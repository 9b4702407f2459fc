/**
 * The delta's common case: which entries of next are unchanged from the entry of prev they match
 * (same size, same digest), in one pass over the columns. Natively when the addon loads (one
 * call, no JIT warm-up for a million-iteration loop in a one-shot process), else in JS: the same
 * marks either way.
 */
import { type ColumnarManifest, HASH_HEX_LENGTH } from '@hotweights/manifest';
import { nativeMarkUnchanged } from './native-text.js';

/**
 * unchanged[i] = 1 when entry i of next matches entry j = match[i] of prev with the same size and
 * the same digest (compared as `words` 32-bit words); prevMatched[j] = 1 for every match.
 */
export function markUnchanged(
  match: Int32Array,
  prevNbytes: Float64Array,
  nextNbytes: Float64Array,
  prevHash: Uint32Array,
  nextHash: Uint32Array,
  words: number,
  prevMatched: Uint8Array,
  unchanged: Uint8Array,
): void {
  for (let i = 0; i < match.length; i++) {
    const j = match[i] as number;
    if (j < 0) continue;
    prevMatched[j] = 1;
    if (prevNbytes[j] !== nextNbytes[i]) continue;
    let k = 0;
    const p = j * words;
    const q = i * words;
    while (k < words && prevHash[p + k] === nextHash[q + k]) k++;
    if (k === words) unchanged[i] = 1;
  }
}

/** Digest columns as 32-bit words when both allow it (same algorithm, aligned), else undefined. */
function hashWords(
  prev: ColumnarManifest,
  next: ColumnarManifest,
): { prev: Uint32Array; next: Uint32Array; words: number } | undefined {
  const a = prev.columns.hash;
  const b = next.columns.hash;
  const len = (HASH_HEX_LENGTH[next.hash_algo] ?? 0) / 2;
  if (prev.hash_algo !== next.hash_algo || len % 4 !== 0 || a.byteOffset % 4 !== 0 || b.byteOffset % 4 !== 0)
    return undefined;
  return {
    prev: new Uint32Array(a.buffer, a.byteOffset, a.length / 4),
    next: new Uint32Array(b.buffer, b.byteOffset, b.length / 4),
    words: len / 4,
  };
}

/**
 * Marks of the entries of next unchanged from their match in prev (match[i]: the index in prev
 * of entry i's key, or -1), and of the entries of prev matched (prevMatched, filled here).
 */
export function unchangedEntries(
  prev: ColumnarManifest,
  next: ColumnarManifest,
  match: Int32Array,
  prevMatched: Uint8Array,
  useNative = true,
): Uint8Array {
  const unchanged = new Uint8Array(next.size);
  const pc = prev.columns;
  const nc = next.columns;
  const hashBytes = (HASH_HEX_LENGTH[next.hash_algo] ?? 0) / 2;
  if (
    useNative &&
    prev.hash_algo === next.hash_algo &&
    hashBytes > 0 &&
    nativeMarkUnchanged(match, pc.nbytes, nc.nbytes, pc.hash, nc.hash, hashBytes, prevMatched, unchanged)
  )
    return unchanged;
  const words = hashWords(prev, next);
  if (words) {
    markUnchanged(match, pc.nbytes, nc.nbytes, words.prev, words.next, words.words, prevMatched, unchanged);
    return unchanged;
  }
  for (let i = 0; i < next.size; i++) {
    const j = match[i] as number;
    if (j < 0) continue;
    prevMatched[j] = 1;
    if (pc.nbytes[j] === nc.nbytes[i] && prev.sameHash(j, next, i)) unchanged[i] = 1;
  }
  return unchanged;
}
