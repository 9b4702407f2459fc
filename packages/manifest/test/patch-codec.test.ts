import { randomBytes } from 'node:crypto';
import { VerificationError } from '@hotweights/core';
import { describe, expect, it } from 'vitest';
import { applyPatch, encodePatch } from '../src/patch-codec.js';

describe('xor-brotli patches', () => {
  it('rebuild the new bytes exactly, are small when few bytes changed, and refuse what does not fit', () => {
    const base = randomBytes(64 * 1024 + 3); // odd length: the byte tail past the last word
    const next = Buffer.from(base);
    for (let i = 0; i < next.length; i += 97) next[i] = (next[i] as number) ^ 1;
    const patch = encodePatch(base, next);
    expect(patch.length).toBeLessThan(next.length / 10);
    expect(Buffer.compare(Buffer.from(applyPatch('xor-brotli', base, patch, next.length, 'k')), next)).toBe(
      0,
    );
    // Unaligned views take the byte path and give the same bytes.
    const shifted = Buffer.concat([Buffer.alloc(1), base]).subarray(1);
    expect(
      Buffer.compare(Buffer.from(applyPatch('xor-brotli', shifted, patch, next.length, 'k')), next),
    ).toBe(0);

    expect(() => applyPatch('xor-zstd', base, patch, next.length, 'k')).toThrowError(
      /unknown patch encoding "xor-zstd"/,
    );
    expect(() => applyPatch('xor-brotli', base.subarray(1), patch, next.length, 'k')).toThrowError(
      VerificationError,
    );
    expect(() =>
      applyPatch('xor-brotli', base, patch.subarray(0, patch.length - 4), next.length, 'k'),
    ).toThrowError(/item k: the patch (does not decode|decodes to)/);
    expect(() => encodePatch(base, next.subarray(1))).toThrowError(RangeError);
  });
});
