/**
 * The delta's marks (delta.ts): natively, in JS on 32-bit words, and in JS byte by byte (digest
 * columns at unaligned places) they are the same, and the same as comparing entry objects.
 */
import type { ManifestEntry } from '@hotweights/core';
import { buildManifest, ColumnarManifest, type ManifestColumns } from '@hotweights/manifest';
import { describe, expect, it } from 'vitest';
import { unchangedEntries } from '../src/delta.js';
import { nativeItemTextAvailable } from '../src/native-text.js';
import { hash, safetensorsEntries } from './column-plans.js';

function version(sizes: readonly number[], rehash: (t: number) => boolean, skip: number, extra: boolean) {
  const tensors: [string, number][] = [];
  for (let t = 0; t < sizes.length; t++)
    if (t !== skip) tensors.push([`layers.${t}.weight`, sizes[t] as number]);
  if (extra) tensors.push(['added.weight', 64]);
  const st = safetensorsEntries('model.safetensors', 0, tensors, 1);
  const entries: ManifestEntry[] = st.entries.map((e) => {
    const t = Number(/^layers\.(\d+)\./.exec(e.tensor)?.[1] ?? -1);
    return { ...e, hash: t >= 0 && rehash(t) ? hash(10_000 + t) : hash(t + 2) };
  });
  return buildManifest(
    {
      version: extra ? 'v2' : 'v1',
      model_id: 'delta',
      created_at: 'now',
      hash_algo: 'blake3',
      files: [st.file],
    },
    entries,
  );
}

/** The same manifest with its digest column one byte off a 4-byte boundary. */
function unaligned(m: ColumnarManifest): ColumnarManifest {
  const hashes = new Uint8Array(m.columns.hash.length + 1);
  hashes.set(m.columns.hash, 1);
  const columns: ManifestColumns = { ...m.columns, hash: hashes.subarray(1) };
  return new ColumnarManifest(m, columns, undefined, m.digest);
}

describe('delta marks', () => {
  it('are the same natively, on words and byte by byte, and as comparing entries', () => {
    expect(nativeItemTextAvailable()).toBe(true);
    const sizes = Array.from({ length: 300 }, (_, t) => 256 * (1 + (t % 7)));
    const prev = version(sizes, () => false, 40, false);
    // Next: every 5th tensor rehashed, every 11th resized (same digest), tensor 40 back, one added.
    const resized = sizes.map((s, t) => (t % 11 === 0 ? s + 256 : s));
    const next = version(resized, (t) => t % 5 === 0, 41, true);
    const match = new Int32Array(next.size);
    for (let i = 0; i < next.size; i++) match[i] = prev.indexOf(next.key(i));
    const want = new Uint8Array(next.size);
    const wantMatched = new Uint8Array(prev.size);
    for (let i = 0; i < next.size; i++) {
      const j = match[i] as number;
      if (j < 0) continue;
      wantMatched[j] = 1;
      const a = prev.entry(j);
      const b = next.entry(i);
      if (a.hash === b.hash && a.nbytes === b.nbytes) want[i] = 1;
    }
    expect(want.reduce((n, x) => n + x, 0)).toBeGreaterThan(100);
    expect(want.reduce((n, x) => n + x, 0)).toBeLessThan(next.size - 60);
    for (const [label, p, n, native] of [
      ['native', prev, next, true],
      ['words', prev, next, false],
      ['bytes', unaligned(prev), unaligned(next), false],
      ['native, unaligned', unaligned(prev), unaligned(next), true],
    ] as const) {
      const matched = new Uint8Array(prev.size);
      expect([...unchangedEntries(p, n, match, matched, native)], label).toEqual([...want]);
      expect([...matched], label).toEqual([...wantMatched]);
    }
  });
});
