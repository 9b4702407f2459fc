/**
 * First-fit-decreasing packing by the addon places every item where the JS packer does: same
 * buckets, offsets and order, over sizes with ties, zeros, full buckets and odd alignments; sizes
 * it does not take (over a bucket, not integers) are left to the JS packer and its error.
 */
import { describe, expect, it } from 'vitest';
import { nativeItemTextAvailable } from '../src/native-text.js';
import { packFirstFitDecreasingInto } from '../src/packing.js';
import { bytes } from './fixtures.js';

function sizesOf(n: number, capacity: number, seed: number): Float64Array {
  const r = bytes(n * 4, seed);
  const sizes = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const x = ((r[4 * i] as number) << 16) | ((r[4 * i + 1] as number) << 8) | (r[4 * i + 2] as number);
    const pick = (r[4 * i + 3] as number) % 8;
    // Zeros, full buckets, a few repeated sizes (ties), and anything in between.
    sizes[i] = pick === 0 ? 0 : pick === 1 ? capacity : pick === 2 ? 4096 : x % (capacity + 1);
  }
  return sizes;
}

describe('packing', () => {
  it('places items natively exactly as in JS', () => {
    expect(nativeItemTextAvailable()).toBe(true);
    for (const [n, capacity, alignment, seed] of [
      [0, 1 << 20, 256, 1],
      [1, 1 << 20, 256, 2],
      [5_000, 1 << 20, 256, 3],
      [5_000, 1_000_003, 1, 4],
      [20_000, 1 << 24, 4096, 5],
      [3_000, 10_000, 64, 6],
    ] as const) {
      const sizes = sizesOf(n, capacity, seed);
      const native = packFirstFitDecreasingInto(sizes, capacity, alignment);
      const js = packFirstFitDecreasingInto(sizes, capacity, alignment, false);
      const label = `${n} items, buckets of ${capacity}, alignment ${alignment}`;
      expect(native.buckets, label).toBe(js.buckets);
      expect(Buffer.compare(Buffer.from(native.bucket.buffer), Buffer.from(js.bucket.buffer)), label).toBe(0);
      expect(Buffer.compare(Buffer.from(native.offset.buffer), Buffer.from(js.offset.buffer)), label).toBe(0);
      expect(Buffer.compare(Buffer.from(native.order.buffer), Buffer.from(js.order.buffer)), label).toBe(0);
    }
  });

  it('leaves sizes it does not take to the JS packer', () => {
    expect(() => packFirstFitDecreasingInto(Float64Array.of(10, 2000, 5), 1000, 8)).toThrow(
      'item 1 (2000 bytes) is larger than a bucket (1000)',
    );
    const fractional = packFirstFitDecreasingInto(Float64Array.of(10.5, 600, 500), 1000, 8);
    expect(fractional).toEqual(packFirstFitDecreasingInto(Float64Array.of(10.5, 600, 500), 1000, 8, false));
    expect(fractional.buckets).toBe(2);
  });
});
