/**
 * A whole plan's items written natively in two sweeps (native/item-text.cc: layout, render) instead
 * of bucket by bucket. Items point at scattered entries of a large manifest, so writing them in
 * plan order waits on a dozen cache and TLB misses per item; both sweeps visit them in entry order
 * (sequential reads) and split them over a few threads. The layout gives each item's exact text
 * length, so encodePlan leaves a hole of that size for it in the file's bytes and the render fills
 * every hole in place: no second copy of the items' text. The canonical text the digest is taken
 * over is then joined from the file's bytes bucket by bucket (join), as the per-bucket writer
 * gathers it. Items the native writer cannot write (names JSON must escape) are written in JS in
 * their place, as before: the same bytes either way.
 */
import { availableParallelism } from 'node:os';
import type { ItemSweep, NativeItemEncoder } from './item-text-addon.js';
import type { JsonBytes } from './json-bytes.js';
import type { BucketSource, ItemWriter, PlannedItems } from './planned-items.js';

/** Below this many items one thread writes them all (starting threads would cost more). */
const THREADS_FROM_ITEMS = 16_384;
/** At most this many threads: the sweeps are bound by memory, not by cores. */
const MAX_THREADS = 4;

export class ItemBatch {
  /** Item indexes in the order the sweeps visit them (by entry). */
  private readonly order: Uint32Array;
  /** Per item: its text's length in bytes (0 until the layout, and for an item left to JS). */
  readonly lengths: Uint32Array;
  /** Per item: where its text starts in the file's bytes (set while the file is written). */
  readonly positions: Float64Array;
  /** Items written in JS (indexes and their lengths), applied to `lengths` after the render. */
  private readonly jsItems: number[] = [];
  private readonly jsLengths: number[] = [];
  private laidOut = false;
  private readonly state = new Float64Array(2);

  constructor(
    private readonly encoder: NativeItemEncoder,
    readonly writer: ItemWriter,
    /** The columns every bucket's items are a window on. */
    private readonly all: PlannedItems,
    readonly count: number,
    private readonly threads: number,
  ) {
    this.order = new Uint32Array(count);
    this.lengths = new Uint32Array(count);
    this.positions = new Float64Array(count);
  }

  private sweep(): ItemSweep {
    const a = this.all;
    return [a.entry, a.part, a.offset, a.nbytes, this.count, this.threads, this.order, this.lengths];
  }

  /** Measures every item's text (first sweep); returns the bytes of the natively written texts. */
  layout(): number {
    this.encoder.layout(...this.sweep());
    this.laidOut = true;
    let bytes = 0;
    for (let g = 0; g < this.count; g++) bytes += this.lengths[g] as number;
    return bytes;
  }

  /**
   * A bucket's items, each after its separator, into `w`: a hole of its text's length for the
   * render, or its text written in JS for an item the native writer leaves to JS.
   */
  place(w: JsonBytes, items: PlannedItems): void {
    const first = items.start;
    const end = first + items.length;
    const state = this.state;
    let g = first;
    while (g < end) {
      g = this.encoder.place(this.lengths, this.positions, g, end, first, w.buffer, w.length, state);
      w.length = state[0] as number;
      if (state[1] === 0) return;
      if (state[1] === 2) {
        w.reserve(w.buffer.length - w.length + 1);
        continue;
      }
      w.raw(g === first ? '\n      ' : ',\n      ');
      const start = w.length;
      this.writer.write(w, items, g - first);
      this.positions[g] = start;
      this.jsItems.push(g);
      this.jsLengths.push(w.length - start);
      g++;
    }
  }

  /** Fills every hole of `out` (second sweep); then each item's text is in place. */
  render(out: Uint8Array): void {
    if (!this.laidOut) throw new Error('ItemBatch.render before layout');
    this.encoder.render(...this.sweep(), this.positions, out);
    for (let x = 0; x < this.jsItems.length; x++)
      this.lengths[this.jsItems[x] as number] = this.jsLengths[x] as number;
  }

  /** Items [from, to) of `out` joined by commas into `dst` (from its start): the canonical items text. */
  join(out: Uint8Array, from: number, to: number, dst: JsonBytes): void {
    dst.length = 0;
    for (;;) {
      const end = this.encoder.join(out, this.positions, this.lengths, from, to, dst.buffer, 0);
      if (end >= 0) {
        dst.length = end;
        return;
      }
      dst.reserve(dst.buffer.length + 1);
    }
  }
}

/**
 * The whole-plan writer for these buckets, or undefined: when the native writer is not available,
 * or the buckets are not all createPlan windows, in order, on one set of columns with one writer.
 * `threads` defaults to the cores available (at most 4) for plans of many items, else 1.
 */
export function itemBatch(
  sources: readonly (BucketSource | undefined)[],
  threads?: number,
): ItemBatch | undefined {
  const first = sources[0];
  const all = first?.items.all;
  if (!first || !all) return undefined;
  let count = 0;
  for (const s of sources) {
    if (
      !s ||
      s.writer !== first.writer ||
      s.items.all !== all ||
      !s.items.inPlace() ||
      s.items.start !== count
    )
      return undefined;
    count += s.items.length;
  }
  const encoder = first.writer.nativeWriter();
  if (!encoder) return undefined;
  const t = threads ?? (count >= THREADS_FROM_ITEMS ? Math.min(MAX_THREADS, availableParallelism()) : 1);
  return new ItemBatch(encoder, first.writer, all, count, t);
}
