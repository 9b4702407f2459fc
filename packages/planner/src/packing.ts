/**
 * Deterministic first-fit-decreasing packing with aligned offsets. Items are sorted by size
 * (descending, ties by their input order) and each goes into the lowest-numbered bucket where it
 * fits at the next aligned offset. A max segment tree over the buckets' free space finds that
 * bucket in O(log buckets), so a million items pack in well under a second.
 */

import { nativePackFirstFit } from './native-text.js';

export function alignUp(n: number, alignment: number): number {
  const r = n % alignment;
  return r === 0 ? n : n + alignment - r;
}

export interface Placement {
  /** Bucket number, 0-based in creation order. */
  readonly bucket: number;
  readonly offset: number;
}

/** Free space per bucket: capacity minus the aligned end of its contents. */
class FreeTree {
  private size = 1;
  private tree = new Float64Array(2);
  count = 0;

  private grow(): void {
    const next = new Float64Array(this.size * 4);
    // Rebuild leaves then parents (sizes double).
    const oldLeaves = this.tree.subarray(this.size, this.size * 2);
    this.size *= 2;
    next.fill(-1);
    next.set(oldLeaves, this.size);
    for (let i = this.size - 1; i >= 1; i--)
      next[i] = Math.max(next[2 * i] as number, next[2 * i + 1] as number);
    this.tree = next;
  }

  push(free: number): number {
    if (this.count === 0 && this.size === 1) this.tree.fill(-1);
    if (this.count >= this.size) this.grow();
    const b = this.count++;
    this.set(b, free);
    return b;
  }

  set(b: number, free: number): void {
    let i = b + this.size;
    this.tree[i] = free;
    for (i >>= 1; i >= 1; i >>= 1)
      this.tree[i] = Math.max(this.tree[2 * i] as number, this.tree[2 * i + 1] as number);
  }

  /** Lowest bucket with free >= need, or -1. */
  first(need: number): number {
    if (this.count === 0 || (this.tree[1] as number) < need) return -1;
    let i = 1;
    while (i < this.size) i = (this.tree[2 * i] as number) >= need ? 2 * i : 2 * i + 1;
    return i - this.size;
  }
}

/** Placements as typed arrays, plus the order items were placed in (see packFirstFitDecreasingInto). */
export interface PackedItems {
  /** Bucket of item i. */
  readonly bucket: Uint32Array;
  /** Offset of item i inside its bucket. */
  readonly offset: Float64Array;
  /** Item indexes in placement order: inside each bucket, offsets ascend along it. */
  readonly order: Uint32Array;
  readonly buckets: number;
}

/**
 * Places items of the given sizes (each <= capacity) into buckets of `capacity` bytes, first fit
 * decreasing (ties by input order). Typed arrays throughout: no object per item.
 */
export function packFirstFitDecreasingInto(
  sizes: Float64Array,
  capacity: number,
  alignment: number,
  /** Pack with the addon when it loads (false: always in JS; the same placements either way). */
  useNative = true,
): PackedItems {
  const n = sizes.length;
  const order = new Uint32Array(n);
  if (useNative) {
    const bucket = new Uint32Array(n);
    const offset = new Float64Array(n);
    const buckets = nativePackFirstFit(sizes, capacity, alignment, bucket, offset, order);
    if (buckets >= 0) return { bucket, offset, order, buckets };
  }
  // Size descending, ties by index. When (capacity - size) * n + index stays exact in a double,
  // that one key sorts natively (no comparator call per comparison); otherwise a comparator.
  let integral = (capacity + 1) * (n + 1) <= Number.MAX_SAFE_INTEGER && Number.isInteger(capacity);
  for (let i = 0; integral && i < n; i++) {
    const s = sizes[i] as number;
    integral = s >= 0 && s <= capacity && Math.floor(s) === s;
  }
  if (integral) {
    const keys = new Float64Array(n);
    for (let i = 0; i < n; i++) keys[i] = (capacity - (sizes[i] as number)) * n + i;
    keys.sort();
    for (let k = 0; k < n; k++) order[k] = (keys[k] as number) % n;
  } else {
    for (let i = 0; i < n; i++) order[i] = i;
    order.sort((a, b) => (sizes[b] as number) - (sizes[a] as number) || a - b);
  }
  const ends: number[] = [];
  const tree = new FreeTree();
  const bucket = new Uint32Array(n);
  const offsetOf = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const i = order[k] as number;
    const size = sizes[i] as number;
    if (size > capacity)
      throw new RangeError(`item ${i} (${size} bytes) is larger than a bucket (${capacity})`);
    let b = tree.first(size);
    if (b < 0) {
      b = tree.push(capacity);
      ends.push(0);
    }
    const offset = alignUp(ends[b] as number, alignment);
    const end = offset + size;
    ends[b] = end;
    const free = capacity - alignUp(end, alignment);
    tree.set(b, free >= 0 ? free : -1);
    bucket[i] = b;
    offsetOf[i] = offset;
  }
  return { bucket, offset: offsetOf, order, buckets: ends.length };
}

/**
 * Places items of the given sizes (each <= capacity) into buckets of `capacity` bytes.
 * Returns the placement of each item (input order) and the number of buckets.
 */
export function packFirstFitDecreasing(
  sizes: ArrayLike<number>,
  capacity: number,
  alignment: number,
): { placements: Placement[]; buckets: number } {
  const packed = packFirstFitDecreasingInto(Float64Array.from(sizes), capacity, alignment);
  const placements: Placement[] = [];
  for (let i = 0; i < sizes.length; i++)
    placements.push({ bucket: packed.bucket[i] as number, offset: packed.offset[i] as number });
  return { placements, buckets: packed.buckets };
}
