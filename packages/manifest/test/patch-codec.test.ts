import { randomBytes } from 'node:crypto';
import { VerificationError } from '@hotweights/core';
import { describe, expect, it } from 'vitest';
import { applyPatch, encodePatch } from '../src/patch-codec.js';

/** `base` with every `every`-th byte's low bit flipped, and the very last byte too. */
function nudged(base: Buffer, every: number): Buffer {
  const next = Buffer.from(base);
  for (let i = 0; i < next.length; i += every) next[i] = (next[i] as number) ^ 1;
  next[next.length - 1] = (next[next.length - 1] as number) ^ 0x80;
  return next;
}

describe('patches', () => {
  it('rebuild the new bytes exactly with either encoding, chosen by how much changed', () => {
    const base = randomBytes(64 * 1024 + 3); // odd length: the byte tail past the last word
    for (const [every, encoding] of [
      [97, 'sparse-brotli'],
      [5, 'xor-brotli'],
    ] as const) {
      const next = nudged(base, every);
      const patch = encodePatch(base, next);
      expect(patch.encoding).toBe(encoding);
      expect(patch.bytes.length).toBeLessThan(next.length / 2);
      const rebuilt = applyPatch(patch.encoding, base, patch.bytes, next.length, 'k');
      expect(Buffer.compare(Buffer.from(rebuilt), next)).toBe(0);
      // Unaligned views take the byte paths and give the same bytes.
      const shifted = Buffer.concat([Buffer.alloc(1), base]).subarray(1);
      const again = applyPatch(patch.encoding, shifted, patch.bytes, next.length, 'k');
      expect(Buffer.compare(Buffer.from(again), next)).toBe(0);
      expect(Buffer.compare(Buffer.from(encodePatch(shifted, next).bytes), Buffer.from(patch.bytes))).toBe(0);
    }
  });

  it('rebuild runs framed by varints of one, two and three bytes, into a copy or in place', () => {
    const base = randomBytes(300_000);
    const next = Buffer.from(base);
    // Gaps of 60 (one-byte varint), 300 (two) and 70,000 (three) bytes; runs of 1, 40 and 200 bytes.
    for (const [at, len] of [
      [60, 1],
      [361, 40],
      [70_401, 200],
      [70_661, 1],
      [299_999, 1],
    ] as const)
      for (let i = at; i < at + len; i++) next[i] = (next[i] as number) ^ 0x5a;
    const patch = encodePatch(base, next);
    expect(patch.encoding).toBe('sparse-brotli');
    const copy = applyPatch(patch.encoding, base, patch.bytes, next.length, 'k');
    expect(Buffer.compare(Buffer.from(copy), next)).toBe(0);
    const live = Buffer.from(base);
    expect(applyPatch(patch.encoding, live, patch.bytes, next.length, 'k', live)).toBe(live);
    expect(Buffer.compare(live, next)).toBe(0);
  });

  it('refuse what does not fit: unknown encoding, another size, a cut patch, runs past the tensor', () => {
    const base = randomBytes(64 * 1024 + 3);
    for (const every of [97, 5]) {
      const next = nudged(base, every);
      const { encoding, bytes } = encodePatch(base, next);
      expect(() => applyPatch('xor-zstd', base, bytes, next.length, 'k')).toThrowError(
        /unknown patch encoding "xor-zstd"/,
      );
      expect(() => applyPatch(encoding, base.subarray(1), bytes, next.length, 'k')).toThrowError(
        VerificationError,
      );
      expect(() =>
        applyPatch(encoding, base, bytes.subarray(0, bytes.length - 4), next.length, 'k'),
      ).toThrowError(/item k: the patch (does not decode|decodes to)/);
      // The same runs against a shorter tensor end past it.
      if (encoding === 'sparse-brotli')
        expect(() => applyPatch(encoding, base.subarray(0, 60_000), bytes, 60_000, 'k')).toThrowError(
          /a run ends past the tensor/,
        );
      expect(() => encodePatch(base, next.subarray(1))).toThrowError(RangeError);
    }
  });
});
