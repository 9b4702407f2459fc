/** The in-memory manifest: columns, with entries materialised on demand. */
import { Buffer, isAscii } from 'node:buffer';
import {
  MANIFEST_SCHEMA,
  type Manifest,
  type ManifestEntry,
  type ManifestEntryKind,
  type ManifestFile,
  SchemaError,
} from '@hotweights/core';
import { HASH_HEX_LENGTH } from './hash-algorithms.js';
import { buildKeyIndex, checkKeyOrder, type KeyIndex } from './key-index.js';
import { KIND_OF_CODE, type ManifestColumns, type ManifestMeta } from './manifest-columns.js';
import { computeManifestDigest } from './manifest-digest.js';

/** A manifest backed by columns: entries are materialised on demand. */
export class ColumnarManifest implements Manifest {
  readonly schema = MANIFEST_SCHEMA;
  readonly version: string;
  readonly model_id: string | null;
  readonly created_at: string;
  readonly checkpoint_root: string | null;
  readonly hash_algo: string;
  readonly files: readonly ManifestFile[];
  readonly dtypes: readonly string[];
  readonly size: number;
  readonly total_bytes: number;
  readonly digest: string;
  private readonly hashBytes: number;
  private readonly hashBuf: Buffer;
  private shapeStart: Uint32Array | undefined;
  private index: KeyIndex | undefined;
  private keyOrderChecked = false;
  private fileRanges: Map<string, [number, number]> | undefined;

  constructor(
    meta: ManifestMeta,
    readonly columns: ManifestColumns,
    index?: KeyIndex,
    digest?: string,
    /** File it was loaded from, for errors found later (a lazily built index). */
    private readonly source?: string,
  ) {
    this.version = meta.version;
    this.model_id = meta.model_id;
    this.created_at = meta.created_at;
    this.checkpoint_root = meta.checkpoint_root ?? null;
    this.hash_algo = meta.hash_algo;
    this.files = meta.files;
    this.dtypes = meta.dtypes;
    this.size = columns.tensor.length;
    this.total_bytes = meta.files.reduce((s, f) => s + f.size, 0);
    this.hashBytes = (HASH_HEX_LENGTH[meta.hash_algo] ?? 0) / 2;
    this.hashBuf = Buffer.from(columns.hash.buffer, columns.hash.byteOffset, columns.hash.byteLength);
    this.index = index;
    // A loaded manifest keeps its stored digest (checked on demand by verifyDigest); computing it
    // means hashing every column, which would double the load time of a large manifest.
    this.digest = digest ?? computeManifestDigest(meta, columns);
  }

  key(i: number): string {
    return `${this.columns.tensor.get(i)}:${this.columns.shard_rank[i]}`;
  }

  kindOf(i: number): ManifestEntryKind {
    return KIND_OF_CODE[this.columns.kind[i] as string] as ManifestEntryKind;
  }

  /** True when entry i has the same hash as entry j of `other` (same algorithm), without copies. */
  sameHash(i: number, other: ColumnarManifest, j: number): boolean {
    if (other.hash_algo !== this.hash_algo) return false;
    const len = this.hashBytes;
    const a = this.columns.hash;
    const b = other.columns.hash;
    for (let k = 0, x = i * len, y = j * len; k < len; k++, x++, y++) if (a[x] !== b[y]) return false;
    return true;
  }

  /** `<algo>:<hex>` of entry i, without materialising the entry. */
  hashOf(i: number): string {
    const len = this.hashBytes;
    return `${this.hash_algo}:${this.hashBuf.toString('hex', i * len, (i + 1) * len)}`;
  }

  /** Index in `columns.dims` of entry i's first dim. */
  dimsStart(i: number): number {
    if (!this.shapeStart) {
      const starts = new Uint32Array(this.size);
      let at = 0;
      for (let j = 0; j < this.size; j++) {
        starts[j] = at;
        const n = this.columns.ndim[j] as number;
        if (n > 0) at += n;
      }
      this.shapeStart = starts;
    }
    return this.shapeStart[i] as number;
  }

  /** Shape of entry i (a fresh array), or null. */
  shapeOf(i: number): number[] | null {
    const ndim = this.columns.ndim[i] as number;
    if (ndim < 0) return null;
    const start = this.dimsStart(i);
    const dims = this.columns.dims;
    const out = new Array<number>(ndim);
    for (let k = 0; k < ndim; k++) out[k] = dims[start + k] as number;
    return out;
  }

  entry(i: number): ManifestEntry {
    if (!Number.isInteger(i) || i < 0 || i >= this.size)
      throw new RangeError(`manifest entry ${i} out of range 0..${this.size - 1}`);
    const c = this.columns;
    const dtype = c.dtype[i] as number;
    return {
      key: this.key(i),
      tensor: c.tensor.get(i),
      shard_rank: c.shard_rank[i] as number,
      kind: KIND_OF_CODE[c.kind[i] as string] as ManifestEntryKind,
      file: (this.files[c.file[i] as number] as ManifestFile).path,
      file_offset: c.file_offset[i] as number,
      nbytes: c.nbytes[i] as number,
      dtype: dtype < 0 ? null : (this.dtypes[dtype] as string),
      shape: this.shapeOf(i),
      hash: this.hashOf(i),
    };
  }

  /** Index of the entry with this key, or -1. */
  indexOf(key: string): number {
    const colon = key.lastIndexOf(':');
    if (colon < 0) return -1;
    const rank = key.slice(colon + 1);
    if (!/^(0|[1-9]\d*)$/.test(rank)) return -1;
    return this.indexOfTensor(key.slice(0, colon), Number(rank));
  }

  /** Throws a SchemaError naming a duplicate key (a no-op when already checked). */
  checkUniqueKeys(): void {
    if (this.keyOrder()) return;
    if (!this.index) this.index = buildKeyIndex(this.columns, this.source);
  }

  /**
   * Entry indexes in key order (tensor, then shard_rank), checked on first use; undefined when
   * the manifest does not carry one (a JSON manifest). Throws a SchemaError naming a duplicate
   * key or a corrupt order.
   */
  keyOrder(): Uint32Array | undefined {
    const order = this.columns.key_order;
    if (order && !this.keyOrderChecked) {
      checkKeyOrder(this.columns, order, this.source);
      this.keyOrderChecked = true;
    }
    return order;
  }

  /** Order of entry i against entry j of `other` by key (tensor, then shard_rank). */
  compareKeys(i: number, other: ColumnarManifest, j: number): number {
    const c = this.columns.tensor.compare(i, other.columns.tensor, j);
    return c !== 0 ? c : (this.columns.shard_rank[i] as number) - (other.columns.shard_rank[j] as number);
  }

  /** Index of the entry of (tensor, shard_rank), or -1; no key string is built. */
  indexOfTensor(tensor: string, shardRank: number): number {
    const order = this.keyOrder();
    if (order) {
      // Binary search over the key order: no table to build for a handful of lookups.
      const names = this.columns.tensor;
      const ranks = this.columns.shard_rank;
      // ASCII names are compared as bytes; a name that is not ASCII cannot be one of them.
      let query: Uint8Array | undefined;
      if (names.bytes) {
        if (!isAscii(Buffer.from(tensor, 'utf8'))) return -1;
        query = Buffer.from(tensor, 'latin1');
      }
      let lo = 0;
      let hi = order.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        const e = order[mid] as number;
        const c =
          (query ? names.compareBytes(e, query) : names.compareTo(e, tensor)) ||
          (ranks[e] as number) - shardRank;
        if (c === 0) return e;
        if (c < 0) lo = mid + 1;
        else hi = mid;
      }
      return -1;
    }
    if (!this.index) this.index = buildKeyIndex(this.columns, this.source);
    return this.index.get(tensor, shardRank);
  }

  /** Throws a SchemaError when the stored digest does not match the content. */
  verifyDigest(file?: string): void {
    const actual = computeManifestDigest(this, this.columns);
    if (actual !== this.digest) throw digestMismatchError(file, actual, this.digest);
  }

  get(key: string): ManifestEntry | undefined {
    const i = this.indexOf(key);
    return i < 0 ? undefined : this.entry(i);
  }

  entriesOfFile(path: string): readonly ManifestEntry[] {
    if (!this.fileRanges) {
      const ranges = new Map<string, [number, number]>();
      const fileCol = this.columns.file;
      for (let i = 0; i < this.size; i++) {
        const p = (this.files[fileCol[i] as number] as ManifestFile).path;
        const r = ranges.get(p);
        if (r) r[1] = i + 1;
        else ranges.set(p, [i, i + 1]);
      }
      this.fileRanges = ranges;
    }
    const r = this.fileRanges.get(path);
    if (!r) return [];
    const out: ManifestEntry[] = [];
    for (let i = r[0]; i < r[1]; i++) out.push(this.entry(i));
    return out;
  }
}

/** The error for a manifest whose content does not hash to its stored digest. */
export function digestMismatchError(file: string | undefined, actual: string, stored: string): SchemaError {
  return new SchemaError({
    file,
    field: 'digest',
    expected: `${actual} (the manifest was modified after it was made)`,
    got: `${stored}, the stored digest, which does not match the content: republish the checkpoint with \`hotweights publish\``,
  });
}
