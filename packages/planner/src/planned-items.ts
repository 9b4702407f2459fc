/**
 * A bucket's items as createPlan places them: typed columns pointing into the next manifest, not
 * objects. The plan's text (and digest) is written straight from these columns and the manifest's
 * own bytes (names, raw digests, dims); the PlanItem objects of `bucket.items` are built only when
 * someone reads them. A million-entry plan is then written without a string or object per item.
 */
import {
  type ColumnarManifest,
  HASH_HEX_LENGTH,
  isConfinedRelativePath,
  type ManifestFile,
  type PlanBucket,
  type PlanItem,
} from '@hotweights/core';
import type { JsonBytes } from './json-bytes.js';

export class PlannedItems {
  length = 0;
  entry: Uint32Array;
  /** Part number of a split tensor, or -1 for a whole entry. */
  part: Int32Array;
  offset: Float64Array;
  nbytes: Float64Array;

  constructor(capacity: number) {
    this.entry = new Uint32Array(capacity);
    this.part = new Int32Array(capacity);
    this.offset = new Float64Array(capacity);
    this.nbytes = new Float64Array(capacity);
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
  /** Per file: `","uri":"<path>"}`, the end of an item. */
  private readonly tail: Uint8Array[];
  /** The constant pieces of an item's text, pre-encoded (see write). */
  private readonly text: ItemText;
  private readonly hashBytes: number;

  /** Per file of the manifest: 1 when its path stays inside the root, 0 when not (-1: not checked). */
  private confined: Int8Array | undefined;

  constructor(
    private readonly m: ColumnarManifest,
    readonly bucketBytes: number,
  ) {
    const enc = (v: unknown) => Buffer.from(JSON.stringify(v), 'utf8');
    const text = (s: string) => Buffer.from(s, 'utf8');
    this.tail = m.files.map((f) => text(`","uri":${JSON.stringify(f.path)}}`));
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
    const f = this.m.columns.file[items.entry[k] as number] as number;
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
    const tail = this.tail[c.file[i] as number] as Uint8Array;
    if (plain && (bytes ? w.plainBytes(bytes, a, b) : w.plain(names.text, a, b))) w.copy(tail);
    else {
      w.length -= 1;
      w.str(names.get(i));
      w.bytes(tail, 1);
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
