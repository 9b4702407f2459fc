/**
 * A bucket's items as createPlan places them: typed columns pointing into the next manifest, not
 * objects. The plan's text (and digest) is written straight from these columns and the manifest's
 * own bytes (names, raw digests, dims); the PlanItem objects of `bucket.items` are built only when
 * someone reads them. A million-entry plan is then written without a string or object per item.
 */

import { endianness } from 'node:os';
import type { ManifestFile, PlanBucket, PlanItem } from '@hotweights/core';
import { type ColumnarManifest, HASH_HEX_LENGTH, isConfinedRelativePath } from '@hotweights/manifest';
import type { JsonBytes } from './json-bytes.js';
import { type NativeItemEncoder, nativeItemEncoder } from './native-text.js';

export class PlannedItems {
  length = 0;
  entry: Uint32Array;
  /** Part number of a split tensor, or -1 for a whole entry. */
  part: Int32Array;
  offset: Float64Array;
  nbytes: Float64Array;
  /** For a window (see window()): the columns it is a window on, and where it starts in them. */
  readonly all: PlannedItems | undefined;
  readonly start: number;

  constructor(capacity: number, all?: PlannedItems, start = 0) {
    this.all = all;
    this.start = start;
    if (all) {
      this.entry = all.entry.subarray(start, start + capacity);
      this.part = all.part.subarray(start, start + capacity);
      this.offset = all.offset.subarray(start, start + capacity);
      this.nbytes = all.nbytes.subarray(start, start + capacity);
      return;
    }
    this.entry = new Uint32Array(capacity);
    this.part = new Int32Array(capacity);
    this.offset = new Float64Array(capacity);
    this.nbytes = new Float64Array(capacity);
  }

  /**
   * Items [start, start + capacity) of `all`, written in place: the buckets of a plan as windows on
   * one set of columns, which the whole-plan writer (ItemBatch) reads in one call.
   */
  static window(all: PlannedItems, start: number, capacity: number): PlannedItems {
    return new PlannedItems(capacity, all, start);
  }

  /** True while this window's items are still in `all` (filled to capacity, never grown out of it). */
  inPlace(): boolean {
    const all = this.all;
    return (
      all !== undefined &&
      this.length === this.entry.length &&
      this.entry.buffer === all.entry.buffer &&
      this.part.buffer === all.part.buffer &&
      this.offset.buffer === all.offset.buffer &&
      this.nbytes.buffer === all.nbytes.buffer
    );
  }

  push(entry: number, part: number, offset: number, nbytes: number): void {
    if (this.length === this.entry.length) {
      const cap = Math.max(8, this.length * 2);
      const e = new Uint32Array(cap);
      e.set(this.entry);
      const p = new Int32Array(cap);
      p.set(this.part);
      const o = new Float64Array(cap);
      o.set(this.offset);
      const b = new Float64Array(cap);
      b.set(this.nbytes);
      this.entry = e;
      this.part = p;
      this.offset = o;
      this.nbytes = b;
    }
    const k = this.length++;
    this.entry[k] = entry;
    this.part[k] = part;
    this.offset[k] = offset;
    this.nbytes[k] = nbytes;
  }
}

/** The constant runs of an item's text, pre-encoded (ItemWriter.write). */
interface ItemText {
  /** Per dtype index + 1 (0: no dtype): `{"dtype":…,"file_offset":`. */
  readonly head: readonly Uint8Array[];
  readonly hash: Uint8Array;
  readonly key: Uint8Array;
  readonly colon: Uint8Array;
  readonly tensor: Uint8Array;
  readonly header: Uint8Array;
  readonly file: Uint8Array;
  readonly offset: Uint8Array;
  readonly shapeNull: Uint8Array;
  readonly shapeOpen: Uint8Array;
  readonly shapeClose: Uint8Array;
  readonly tensorName: Uint8Array;
}

/** Per-manifest constants for writing items: pre-encoded file paths, dtypes and kinds. */
export class ItemWriter {
  /** Per file f: `","uri":"<path>"}`, the end of an item, at bytes[starts[f], starts[f + 1]). */
  private tailText: { readonly bytes: Uint8Array; readonly starts: Uint32Array } | undefined;
  /** The constant pieces of an item's text, pre-encoded (see write). */
  private readonly text: ItemText;
  private readonly hashBytes: number;

  /** Per file of the manifest: 1 when its path stays inside the root, 0 when not (-1: not checked). */
  private confined: Int8Array | undefined;
  /** The manifest's file column, read once (it may be built on first read: see withImpliedPlaces). */
  private fileColumn: Uint32Array | undefined;

  /** The native writer over this manifest's columns (null: not available), made on first use. */
  private encoder: NativeItemEncoder | null | undefined;
  private readonly state = new Float64Array(3);

  constructor(
    private readonly m: ColumnarManifest,
    readonly bucketBytes: number,
    /** Write items with the native writer when it loads (false: always in JS, same bytes). */
    private readonly useNative = true,
  ) {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');
    const text = (s: string) => Buffer.from(s, 'utf8');
    this.hashBytes = (HASH_HEX_LENGTH[m.hash_algo] ?? 0) / 2;
    this.text = {
      head: [null, ...m.dtypes].map((d) => text(`{"dtype":${enc(d).toString('utf8')},"file_offset":`)),
      hash: text(`,"hash":${JSON.stringify(`${m.hash_algo}:`).slice(0, -1)}`),
      key: text('","key":"'),
      colon: text(':'),
      tensor: text('","kind":"tensor","nbytes":'),
      header: text('","kind":"header","nbytes":'),
      file: text('","kind":"file","nbytes":'),
      offset: text(',"offset":'),
      shapeNull: text(',"shape":null,"shard_rank":'),
      shapeOpen: text(',"shape":['),
      shapeClose: text('],"shard_rank":'),
      tensorName: text(',"tensor":"'),
    };
  }

  /** Every file's item end, encoded once (one string, one buffer: a million-entry manifest has ~10k files). */
  private tails(): { readonly bytes: Uint8Array; readonly starts: Uint32Array } {
    if (this.tailText) return this.tailText;
    const files = this.m.files;
    const pieces = files.map((f) => `","uri":${JSON.stringify(f.path)}}`);
    const starts = new Uint32Array(files.length + 1);
    for (let k = 0; k < pieces.length; k++)
      starts[k + 1] = (starts[k] as number) + Buffer.byteLength(pieces[k] as string, 'utf8');
    this.tailText = { bytes: Buffer.from(pieces.join(''), 'utf8'), starts };
    return this.tailText;
  }

  /**
   * The native writer for this manifest, or null when the addon did not load (or `useNative` was
   * false): then every item is written by write() below, the same bytes.
   */
  nativeWriter(): NativeItemEncoder | null {
    if (this.encoder !== undefined) return this.encoder;
    this.encoder = null;
    if (!this.useNative || endianness() !== 'LE') return null;
    const m = this.m;
    const c = m.columns;
    const names = c.tensor;
    let units: Uint8Array | Uint16Array;
    if (names.bytes) units = names.bytes;
    else {
      // UTF-16 code units, as the offsets count them.
      const b = Buffer.from(names.text, 'utf16le');
      units =
        b.byteOffset % 2 === 0
          ? new Uint16Array(b.buffer, b.byteOffset, b.length / 2)
          : new Uint16Array(Uint8Array.from(b).buffer);
    }
    const concat = (pieces: readonly Uint8Array[]) => {
      const starts = new Uint32Array(pieces.length + 1);
      for (let k = 0; k < pieces.length; k++)
        starts[k + 1] = (starts[k] as number) + (pieces[k] as Uint8Array).length;
      return { bytes: new Uint8Array(Buffer.concat(pieces)), starts };
    };
    const heads = concat(this.text.head);
    const tails = this.tails();
    this.encoder =
      nativeItemEncoder({
        names: units,
        nameUnits: names.bytes ? 1 : 2,
        starts: names.starts,
        shardRank: c.shard_rank,
        kind: Buffer.from(c.kind, 'latin1'),
        file: c.file,
        fileOffset: c.file_offset,
        nbytes: c.nbytes,
        dtype: c.dtype,
        ndim: c.ndim,
        dims: c.dims,
        hash: c.hash,
        hashBytes: this.hashBytes,
        heads: heads.bytes,
        headStarts: heads.starts,
        tails: tails.bytes,
        tailStarts: tails.starts,
        hashPrefix: new Uint8Array(this.text.hash),
        bucketBytes: this.bucketBytes,
      }) ?? null;
    return this.encoder;
  }

  /**
   * All items of a bucket into `w` (each after its separator: a new line, indented, and a comma
   * after the first) and, joined by commas, into `canon`: natively when the addon loaded, item by
   * item in JS otherwise and for any item the native writer leaves to JS.
   */
  writeItems(w: JsonBytes, canon: JsonBytes, items: PlannedItems): void {
    const n = items.length;
    const enc = this.nativeWriter();
    const state = this.state;
    let k = 0;
    while (k < n) {
      if (enc) {
        k = enc.write(
          items.entry,
          items.part,
          items.offset,
          items.nbytes,
          k,
          n,
          w.buffer,
          w.length,
          canon.buffer,
          canon.length,
          state,
        );
        w.length = state[0] as number;
        canon.length = state[1] as number;
        if (state[2] === 0) return;
        if (state[2] === 2) {
          // More room than now in both (each at least doubles), so a retry makes progress.
          w.reserve(w.buffer.length - w.length + 1);
          canon.reserve(canon.buffer.length - canon.length + 1);
          continue;
        }
      }
      w.raw(k === 0 ? '\n      ' : ',\n      ');
      const start = w.length;
      this.write(w, items, k);
      if (k) canon.raw(',');
      canon.from(w, start, w.length);
      k++;
    }
  }

  /** The manifest the items point into. */
  get manifest(): ColumnarManifest {
    return this.m;
  }

  /** The item's key, `<tensor>:<shard_rank>` (for messages: builds a string). */
  key(items: PlannedItems, k: number): string {
    return this.m.key(items.entry[k] as number);
  }

  /** Whether the item's uri stays inside the checkpoint root: checked once per file, not per item. */
  uriConfined(items: PlannedItems, k: number): boolean {
    this.fileColumn ??= this.m.columns.file;
    const f = this.fileColumn[items.entry[k] as number] as number;
    this.confined ??= new Int8Array(this.m.files.length).fill(-1);
    let v = this.confined[f] as number;
    if (v < 0) {
      v = isConfinedRelativePath((this.m.files[f] as ManifestFile).path) ? 1 : 0;
      this.confined[f] = v;
    }
    return v === 1;
  }

  /** The item's uri (for messages). */
  uriOf(items: PlannedItems, k: number): string {
    return (this.m.files[this.m.columns.file[items.entry[k] as number] as number] as ManifestFile).path;
  }

  /** The item's PlanItem object (canonical key order). */
  item(items: PlannedItems, k: number): PlanItem {
    const m = this.m;
    const c = m.columns;
    const i = items.entry[k] as number;
    const p = items.part[k] as number;
    const tensor = c.tensor.get(i);
    const shardRank = c.shard_rank[i] as number;
    const dtype = c.dtype[i] as number;
    const tensorNbytes = c.nbytes[i] as number;
    const tensorOffset = p < 0 ? 0 : p * this.bucketBytes;
    const head = {
      dtype: dtype < 0 ? null : (m.dtypes[dtype] as string),
      file_offset: (c.file_offset[i] as number) + tensorOffset,
      hash: m.hashOf(i),
      key: `${tensor}:${shardRank}`,
      kind: m.kindOf(i),
      nbytes: items.nbytes[k] as number,
      offset: items.offset[k] as number,
    };
    const tail = {
      shape: m.shapeOf(i),
      shard_rank: shardRank,
      tensor,
      uri: (m.files[c.file[i] as number] as ManifestFile).path,
    };
    if (p < 0) return { ...head, ...tail };
    return {
      ...head,
      part: {
        count: Math.ceil(tensorNbytes / this.bucketBytes),
        index: p,
        tensor_nbytes: tensorNbytes,
        tensor_offset: tensorOffset,
      },
      ...tail,
    };
  }

  /** The canonical JSON of item k, written from the columns (same text JSON would give). */
  write(w: JsonBytes, items: PlannedItems, k: number): void {
    const m = this.m;
    const c = m.columns;
    const t = this.text;
    const i = items.entry[k] as number;
    const p = items.part[k] as number;
    const tensorOffset = p < 0 ? 0 : p * this.bucketBytes;
    const names = c.tensor;
    const a = names.starts[i] as number;
    const b = names.starts[i + 1] as number;
    const rank = c.shard_rank[i] as number;
    // Runs of constant text between two values are copied as one pre-encoded piece.
    w.copy(t.head[(c.dtype[i] as number) + 1] as Uint8Array);
    w.num((c.file_offset[i] as number) + tensorOffset);
    w.copy(t.hash);
    w.hex(c.hash, i * this.hashBytes, (i + 1) * this.hashBytes);
    w.copy(t.key);
    const bytes = names.bytes;
    const plain = bytes ? w.plainBytes(bytes, a, b) : w.plain(names.text, a, b);
    if (plain) {
      w.copy(t.colon);
      w.num(rank);
    } else {
      w.length -= 1;
      w.str(`${names.get(i)}:${rank}`);
    }
    const kind = c.kind.charCodeAt(i);
    // The kind piece starts with the key's closing quote, which str() has already written.
    const kindText = kind === 0x74 ? t.tensor : kind === 0x68 ? t.header : t.file;
    if (plain) w.copy(kindText);
    else w.bytes(kindText, 1);
    w.num(items.nbytes[k] as number);
    w.copy(t.offset);
    w.num(items.offset[k] as number);
    if (p >= 0) {
      const tensorNbytes = c.nbytes[i] as number;
      w.raw(',"part":{"count":');
      w.num(Math.ceil(tensorNbytes / this.bucketBytes));
      w.raw(',"index":');
      w.num(p);
      w.raw(',"tensor_nbytes":');
      w.num(tensorNbytes);
      w.raw(',"tensor_offset":');
      w.num(tensorOffset);
      w.raw('}');
    }
    const ndim = c.ndim[i] as number;
    if (ndim < 0) w.copy(t.shapeNull);
    else {
      const s = m.dimsStart(i);
      w.copy(t.shapeOpen);
      for (let d = 0; d < ndim; d++) {
        if (d) w.raw(',');
        w.num(c.dims[s + d] as number);
      }
      w.copy(t.shapeClose);
    }
    w.num(rank);
    w.copy(t.tensorName);
    // The uri piece starts with the name's closing quote, which str() writes itself.
    const tails = this.tails();
    const f = c.file[i] as number;
    const from = tails.starts[f] as number;
    const to = tails.starts[f + 1] as number;
    if (plain && (bytes ? w.plainBytes(bytes, a, b) : w.plain(names.text, a, b)))
      w.copy(tails.bytes, from, to);
    else {
      w.length -= 1;
      w.str(names.get(i));
      w.copy(tails.bytes, from + 1, to);
    }
  }
}

/** Where a createPlan bucket's items come from (the writer uses it instead of bucket.items). */
export interface BucketSource {
  readonly items: PlannedItems;
  readonly writer: ItemWriter;
}

const sources = new WeakMap<PlanBucket, BucketSource>();

/** The columns behind a bucket made by plannedBucket, if it is one. */
export function bucketSource(bucket: PlanBucket): BucketSource | undefined {
  return sources.get(bucket);
}

/**
 * A bucket whose `items` (an own, enumerable property, so spreads, JSON and structured clones
 * see it) are built from the columns on first read and then kept.
 */
export function plannedBucket(
  bucketId: number,
  size: number,
  consumerRanks: number[],
  source: BucketSource,
): PlanBucket {
  const bucket = { bucket_id: bucketId, size, consumer_ranks: consumerRanks } as unknown as PlanBucket;
  Object.defineProperty(bucket, 'items', {
    enumerable: true,
    configurable: true,
    get(): readonly PlanItem[] {
      const list: PlanItem[] = new Array(source.items.length);
      for (let k = 0; k < source.items.length; k++) list[k] = source.writer.item(source.items, k);
      Object.defineProperty(bucket, 'items', { value: list, enumerable: true, writable: false });
      return list;
    },
  });
  sources.set(bucket, source);
  return bucket;
}
