/**
 * The manifest's on-disk format and its in-memory columnar implementation.
 *
 * On disk (schema `hotweights.manifest`, manifest_version 2) the entries are stored as columns:
 * paths once in `files` (with each file's entry count), dtypes once in `dtypes`, and per entry:
 * names as one concatenated string plus a column of their lengths, a kind character, and numeric
 * columns as base64 of little-endian typed arrays (u32 shard ranks and name lengths, i32 dtype
 * indexes and ranks of shapes, f64 byte counts and dims), hashes as base64 of the raw digests.
 * JSON.parse then reads a few long strings instead of millions of numbers, and base64 decodes
 * into typed arrays at GB/s with no per-value allocation: a million entries load in a fraction
 * of the time of one JSON number or hex string per value. The document stays JSON (metadata and
 * files are readable) and plans stay fully readable.
 *
 * Entries are ordered by file (files sorted by path) and, inside a file, by offset; a file's
 * entries cover it exactly (a safetensors file: its header entry, then its tensors; any other file:
 * one whole-file entry). So an entry's file and offset are implied by the counts and sizes and are
 * not stored; the loader decodes the columns, derives file and offset, and checks the rest (lengths,
 * ranges, coverage, unique keys), so consumers can rely on it.
 */
import { Buffer, isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { closeSync, fstatSync, openSync, readSync, statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { endianness } from 'node:os';
import {
  HotweightsError,
  MANIFEST_SCHEMA,
  type Manifest,
  type ManifestEntry,
  type ManifestEntryKind,
  type ManifestFile,
  SchemaError,
} from '@hotweights/core';
import * as shmModule from '@hotweights/shm';
import { BINARY_MANIFEST_VERSION, isBinaryManifest, parseManifestBinary } from './manifest-binary.js';
import { hashName, NameColumn } from './name-column.js';
import { canonicalJson, type JsonObject, SchemaChecker } from './schema-check.js';

/** Bumped only on incompatible changes of the on-disk layout. */
export const MANIFEST_VERSION = 2 as const;

/** Hex digits of each supported hash algorithm's digest (twice its byte length). */
export const HASH_HEX_LENGTH: Readonly<Record<string, number>> = Object.freeze({
  blake3: 64,
  'xxh3-64': 16,
  sha256: 64,
});

const KIND_CODE: Record<ManifestEntryKind, string> = { tensor: 't', header: 'h', file: 'f' };
const KIND_OF_CODE: Record<string, ManifestEntryKind> = { t: 'tensor', h: 'header', f: 'file' };

/** The columns of a manifest; index i of every column describes entry i. */
export interface ManifestColumns {
  /** Entry names (tensor names; a header's or whole file's path). */
  readonly tensor: NameColumn;
  readonly shard_rank: Uint32Array;
  /** One character per entry: `t` tensor, `h` header, `f` file. */
  readonly kind: string;
  /** Index into `files`. Derived on load from each file's entry count (not stored). */
  readonly file: Uint32Array;
  /** Derived on load: entries of a file are contiguous from offset 0 (not stored). */
  readonly file_offset: Float64Array;
  readonly nbytes: Float64Array;
  /** Index into `dtypes`, or -1 for none. */
  readonly dtype: Int32Array;
  /** Number of dims of the entry's shape, or -1 for none. */
  readonly ndim: Int32Array;
  /** All shapes' dims, concatenated in entry order. */
  readonly dims: Float64Array;
  /** All raw digests, concatenated, `HASH_HEX_LENGTH[hash_algo] / 2` bytes per entry. */
  readonly hash: Uint8Array;
  /**
   * Entry indexes ordered by key (tensor by UTF-16 code units, then shard_rank), when known (the
   * binary format stores it). Lookups and the duplicate-key check then need no hash table, and
   * two manifests can be merge-joined. Checked (a permutation, keys strictly ascending) before
   * first use, so a corrupt order is an error, never a wrong answer.
   */
  readonly key_order?: Uint32Array;
}

export interface ManifestMeta {
  readonly version: string;
  readonly model_id: string | null;
  readonly created_at: string;
  readonly checkpoint_root?: string | null;
  readonly hash_algo: string;
  readonly files: readonly ManifestFile[];
  readonly dtypes: readonly string[];
}

type NumericArray = Uint32Array | Int32Array | Float64Array;
type NumericArrayType = Uint32ArrayConstructor | Int32ArrayConstructor | Float64ArrayConstructor;

const LITTLE_ENDIAN = endianness() === 'LE';

/** The little-endian bytes of a typed array (a view, unless the machine is big-endian). */
function leBytes(a: NumericArray): Buffer {
  const b = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return b;
  const copy = Buffer.from(b);
  if (a.BYTES_PER_ELEMENT === 4) copy.swap32();
  else copy.swap64();
  return copy;
}

/** Base64 of a column's little-endian bytes, as stored on disk. */
function encodeColumn(a: NumericArray | Uint8Array): string {
  return a instanceof Uint8Array
    ? Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64')
    : leBytes(a).toString('base64');
}

/**
 * Decodes a base64 column of `n` values. Buffer's decoder silently skips characters that are not
 * base64, so the text length and the decoded length are both checked: truncated, padded or
 * corrupted text gives an error naming the field instead of a shifted column.
 */
function decodeColumn<T extends NumericArrayType | Uint8ArrayConstructor>(
  c: SchemaChecker,
  value: unknown,
  field: string,
  Type: T,
  n: number,
  what: string,
): InstanceType<T> {
  const width = Type.BYTES_PER_ELEMENT;
  const bytes = n * width;
  const chars = Math.ceil(bytes / 3) * 4;
  if (typeof value !== 'string') c.fail(field, `a base64 string of ${what}`, value);
  if (value.length !== chars)
    c.fail(field, `${chars} base64 characters (${what}: ${bytes} bytes)`, `${value.length} characters`);
  let buf: Uint8Array = Buffer.from(value, 'base64');
  if (buf.length !== bytes)
    c.fail(field, `valid base64 (${what}: ${bytes} bytes)`, `${buf.length} bytes after decoding`);
  // Small buffers come from Buffer's shared pool at any offset: copy to get an aligned view.
  if (buf.byteOffset % width !== 0) buf = new Uint8Array(buf);
  if (!LITTLE_ENDIAN && width > 1) {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
    if (width === 4) b.swap32();
    else b.swap64();
  }
  return new Type(buf.buffer as ArrayBuffer, buf.byteOffset, n) as InstanceType<T>;
}

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
    if (actual !== this.digest)
      throw new SchemaError({
        file,
        field: 'digest',
        expected: `${actual} (the manifest was modified after it was made)`,
        got: this.digest,
      });
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

/**
 * (tensor, shard_rank) -> entry index: an open-addressing table of entry numbers keyed by an
 * FNV-1a hash of the name. About twice as fast to build as a Map of a million strings, and it
 * needs no key strings at all.
 */
class KeyIndex {
  /** Pairs (entry + 1, name hash): a probe reads one cache line and compares names only on a hash match. */
  private readonly table: Int32Array;
  private readonly mask: number;

  constructor(
    private readonly names: NameColumn,
    private readonly rank: ArrayLike<number>,
    file: string | undefined,
  ) {
    const n = names.length;
    let size = 16;
    while (size < n * 2) size *= 2;
    const table = new Int32Array(size * 2);
    const mask = size - 1;
    this.table = table;
    this.mask = mask;
    for (let i = 0; i < n; i++) {
      const r = rank[i] as number;
      const h = names.hash(i, r) | 0;
      let p = h & mask;
      for (;;) {
        const at = table[2 * p] as number;
        if (at === 0) break;
        if (table[2 * p + 1] === h && rank[at - 1] === r && names.equals(at - 1, names, i)) {
          const key = `${names.get(i)}:${r}`;
          throw new SchemaError({
            file,
            field: `entries.tensor[${i}]`,
            expected: `a unique key (tensor:shard_rank); ${JSON.stringify(key)} is also entry ${at - 1}`,
            got: JSON.stringify(key),
          });
        }
        p = (p + 1) & mask;
      }
      table[2 * p] = i + 1;
      table[2 * p + 1] = h;
    }
  }

  get(t: string, r: number): number {
    const h = hashName(t, r) | 0;
    let p = h & this.mask;
    for (;;) {
      const at = this.table[2 * p] as number;
      if (at === 0) return -1;
      if (this.table[2 * p + 1] === h && this.rank[at - 1] === r && this.names.is(at - 1, t)) return at - 1;
      p = (p + 1) & this.mask;
    }
  }
}

/**
 * Checks a stored key order: a permutation of the entries along which keys strictly ascend, so
 * neighbours are compared once and an equal pair is a duplicate key.
 */
function checkKeyOrder(columns: ManifestColumns, order: Uint32Array, file: string | undefined): void {
  const c = new SchemaChecker(file);
  const names = columns.tensor;
  const ranks = columns.shard_rank;
  const n = names.length;
  if (order.length !== n) c.fail('entries.key_order', `${n} values (one per entry)`, order.length);
  const seen = new Uint8Array(n);
  for (let k = 0; k < n; k++) {
    const e = order[k] as number;
    if (e >= n || seen[e]) c.fail(`entries.key_order[${k}]`, `each entry index 0..${n - 1} once`, e);
    seen[e] = 1;
    if (k === 0) continue;
    const p = order[k - 1] as number;
    const cmp = names.compare(p, names, e) || (ranks[p] as number) - (ranks[e] as number);
    if (cmp === 0) {
      const key = `${names.get(e)}:${ranks[e]}`;
      throw new SchemaError({
        file,
        field: `entries.tensor[${Math.max(p, e)}]`,
        expected: `a unique key (tensor:shard_rank); ${JSON.stringify(key)} is also entry ${Math.min(p, e)}`,
        got: JSON.stringify(key),
      });
    }
    if (cmp > 0)
      c.fail(
        `entries.key_order[${k}]`,
        `entries in ascending key order (entry ${p} sorts after entry ${e})`,
        e,
      );
  }
}

/** Entry indexes sorted by key (tensor by UTF-16 code units, then shard_rank). */
export function computeKeyOrder(columns: ManifestColumns): Uint32Array {
  const names = columns.tensor;
  const ranks = columns.shard_rank;
  const order = new Uint32Array(names.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((a, b) => names.compare(a, names, b) || (ranks[a] as number) - (ranks[b] as number));
  return order;
}

/** Builds the key index; throws a SchemaError naming a duplicate key. */
function buildKeyIndex(columns: ManifestColumns, file: string | undefined): KeyIndex {
  return new KeyIndex(columns.tensor, columns.shard_rank, file);
}

/** Entries per file, from the file column (entries are grouped by file in files order). */
function entriesPerFile(columns: ManifestColumns, files: number): number[] {
  const counts = new Array<number>(files).fill(0);
  for (let i = 0; i < columns.file.length; i++) (counts[columns.file[i] as number] as number)++;
  return counts;
}

function metaForDigest(meta: ManifestMeta, columns: ManifestColumns): JsonObject {
  const counts = entriesPerFile(columns, meta.files.length);
  return {
    schema: MANIFEST_SCHEMA,
    manifest_version: MANIFEST_VERSION,
    version: meta.version,
    model_id: meta.model_id,
    hash_algo: meta.hash_algo,
    files: meta.files.map((f, i) => ({ path: f.path, size: f.size, kind: f.kind, entries: counts[i] })),
    dtypes: meta.dtypes,
  };
}

/**
 * `sha256:<hex>` of the manifest's content: metadata (without created_at, so republishing the same
 * bytes as the same version gives the same digest) and every column. Independent of formatting.
 */
export function computeManifestDigest(meta: ManifestMeta, columns: ManifestColumns): string {
  const h = createHash('sha256');
  h.update(canonicalJson(metaForDigest(meta, columns)));
  for (const name of COLUMN_ORDER) {
    h.update('\n');
    const col = columns[name];
    if (typeof col === 'string') h.update(col);
    else if (col instanceof NameColumn) {
      // ASCII bytes hash the same as the text they spell.
      h.update(col.bytes ?? col.text);
      h.update(leBytes(col.lengths()));
    } else if (col instanceof Uint8Array) h.update(col);
    else h.update(leBytes(col as NumericArray));
  }
  return `sha256:${h.digest('hex')}`;
}

const COLUMN_ORDER = [
  'tensor',
  'shard_rank',
  'kind',
  'nbytes',
  'dtype',
  'ndim',
  'dims',
  'hash',
] as const satisfies readonly (keyof ManifestColumns)[];

/**
 * Builds a columnar manifest from entries (any order): sorts them by file and offset, and checks
 * the invariants the loader checks (coverage, unique keys, one hash algorithm).
 */
export function buildManifest(
  meta: Omit<ManifestMeta, 'dtypes'>,
  entries: readonly ManifestEntry[],
): ColumnarManifest {
  const files = [...meta.files].sort((a, b) => compareStrings(a.path, b.path));
  const fileIndex = new Map(files.map((f, i) => [f.path, i]));
  const sorted = [...entries].sort((a, b) => {
    const fa = fileIndex.get(a.file) ?? -1;
    const fb = fileIndex.get(b.file) ?? -1;
    return fa !== fb ? fa - fb : a.file_offset - b.file_offset;
  });
  const dtypes: string[] = [];
  const dtypeIndex = new Map<string, number>();
  const cols = {
    tensor: [] as string[],
    shard_rank: [] as number[],
    kind: [] as string[],
    file: [] as number[],
    file_offset: [] as number[],
    nbytes: [] as number[],
    dtype: [] as number[],
    ndim: [] as number[],
    dims: [] as number[],
    hash: [] as string[],
  };
  const prefix = `${meta.hash_algo}:`;
  for (const e of sorted) {
    const fi = fileIndex.get(e.file);
    if (fi === undefined)
      throw new HotweightsError('HW_INTERNAL', `entry ${e.key}: file ${e.file} not listed`);
    if (!e.hash.startsWith(prefix))
      throw new HotweightsError('HW_INTERNAL', `entry ${e.key}: hash ${e.hash} is not ${meta.hash_algo}`);
    let d = -1;
    if (e.dtype !== null) {
      d = dtypeIndex.get(e.dtype) ?? -1;
      if (d < 0) {
        d = dtypes.length;
        dtypes.push(e.dtype);
        dtypeIndex.set(e.dtype, d);
      }
    }
    if (!Number.isInteger(e.shard_rank) || e.shard_rank < 0 || e.shard_rank > 0xffffffff)
      throw new HotweightsError('HW_INTERNAL', `entry ${e.key}: shard rank ${e.shard_rank} is not a u32`);
    cols.tensor.push(e.tensor);
    cols.shard_rank.push(e.shard_rank);
    cols.kind.push(KIND_CODE[e.kind]);
    cols.file.push(fi);
    cols.file_offset.push(e.file_offset);
    cols.nbytes.push(e.nbytes);
    cols.dtype.push(d);
    cols.ndim.push(e.shape === null ? -1 : e.shape.length);
    if (e.shape) cols.dims.push(...e.shape);
    cols.hash.push(e.hash.slice(prefix.length));
  }
  const hashBytes = (HASH_HEX_LENGTH[meta.hash_algo] ?? 0) / 2;
  const hash = Buffer.alloc(cols.hash.length * hashBytes);
  for (const [i, hex] of cols.hash.entries()) {
    if (hex.length !== hashBytes * 2 || !/^[0-9a-f]*$/.test(hex))
      throw new HotweightsError(
        'HW_INTERNAL',
        `entry ${cols.tensor[i]}: hash ${hex} is not ${hashBytes * 2} lowercase hex digits (${meta.hash_algo})`,
      );
    hash.write(hex, i * hashBytes, 'hex');
  }
  const columns: ManifestColumns = {
    tensor: NameColumn.from(cols.tensor),
    shard_rank: Uint32Array.from(cols.shard_rank),
    kind: cols.kind.join(''),
    file: Uint32Array.from(cols.file),
    file_offset: Float64Array.from(cols.file_offset),
    nbytes: Float64Array.from(cols.nbytes),
    dtype: Int32Array.from(cols.dtype),
    ndim: Int32Array.from(cols.ndim),
    dims: Float64Array.from(cols.dims),
    hash,
  };
  const full: ManifestMeta = { ...meta, files, dtypes };
  return validateColumns(full, columns, undefined);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Checks lengths, values and coverage of the columns; returns the manifest. */
export function validateColumns(
  meta: ManifestMeta,
  columns: ManifestColumns,
  file: string | undefined,
  digest?: string,
  lazyIndex = false,
): ColumnarManifest {
  const c: SchemaChecker = new SchemaChecker(file);
  const n = columns.tensor.length;
  const hashLen = HASH_HEX_LENGTH[meta.hash_algo] as number;
  if (hashLen === undefined)
    c.fail('hash_algo', `one of ${Object.keys(HASH_HEX_LENGTH).join(', ')}`, meta.hash_algo);
  const hashBytes = hashLen / 2;
  for (const name of ['shard_rank', 'file', 'file_offset', 'nbytes', 'dtype', 'ndim'] as const) {
    if (columns[name].length !== n)
      c.fail(`entries.${name}`, `${n} values (one per entry)`, columns[name].length);
  }
  if (columns.kind.length !== n)
    c.fail('entries.kind', `${n} characters (one per entry)`, columns.kind.length);
  if (columns.hash.length !== n * hashBytes)
    c.fail('entries.hash', `${n * hashBytes} bytes (${hashBytes} per entry)`, columns.hash.length);
  if (!/^[thf]*$/.test(columns.kind)) c.fail('entries.kind', 'only the characters t, h, f');
  // One tight pass over typed arrays (a million entries: a few ms); a failure is then re-described
  // with its field and index by describeEntryFault.
  const starts = columns.tensor.starts;
  const { shard_rank: rankCol, file: fileCol, file_offset: offCol, nbytes: nbCol, dtype: dtCol } = columns;
  const { ndim: ndCol, dims: dimsCol, kind } = columns;
  const fileCount = meta.files.length;
  const dtypeCount = meta.dtypes.length;
  const MAX = Number.MAX_SAFE_INTEGER;
  let dimsAt = 0;
  let curFile = -1;
  let cursor = 0;
  for (let i = 0; i < n; i++) {
    const sr = rankCol[i] as number;
    const fi = fileCol[i] as number;
    const off = offCol[i] as number;
    const nb = nbCol[i] as number;
    const dt = dtCol[i] as number;
    const nd = ndCol[i] as number;
    let ok =
      starts[i + 1] !== starts[i] &&
      sr >= 0 &&
      sr <= MAX &&
      Math.floor(sr) === sr &&
      fi < fileCount &&
      fi >= curFile &&
      nb >= 0 &&
      nb <= MAX &&
      Math.floor(nb) === nb &&
      dt >= -1 &&
      dt < dtypeCount &&
      Math.floor(dt) === dt &&
      nd >= -1 &&
      Math.floor(nd) === nd;
    for (let k = 0; ok && k < nd; k++) {
      const d = dimsCol[dimsAt + k] as number;
      ok = d >= 0 && d <= MAX && Math.floor(d) === d;
    }
    if (ok && fi !== curFile) {
      const f = meta.files[fi] as ManifestFile;
      ok = cursor === (curFile < 0 ? 0 : (meta.files[curFile] as ManifestFile).size);
      const k = kind.charCodeAt(i);
      ok = ok && (f.kind === 'file' ? k === 0x66 : k === 0x68);
      if (ok) {
        curFile = fi;
        cursor = 0;
      }
    } else if (ok) ok = kind.charCodeAt(i) === 0x74;
    ok = ok && off === cursor;
    if (!ok) describeEntryFault(c, meta, columns, i, dimsAt, curFile, cursor);
    if (nd > 0) dimsAt += nd;
    cursor = off + nb;
  }
  if (curFile >= 0 && cursor !== (meta.files[curFile] as ManifestFile).size) {
    const f = meta.files[curFile] as ManifestFile;
    c.fail(
      `entries (file ${JSON.stringify(f.path)})`,
      `entries covering the file's ${f.size} bytes`,
      `${cursor} bytes covered before entry ${n}`,
    );
  }
  if (dimsAt !== columns.dims.length)
    c.fail('entries.dims', `${dimsAt} values (sum of ndim)`, columns.dims.length);
  // Every file must have entries (an empty file still gets one zero-byte entry).
  const seen = new Uint8Array(fileCount);
  for (let i = 0; i < n; i++) seen[fileCol[i] as number] = 1;
  for (const [i, f] of meta.files.entries()) {
    if (!seen[i]) c.fail(`files[${i}]`, `at least one entry for ${JSON.stringify(f.path)}`);
  }
  const index = lazyIndex || columns.key_order ? undefined : buildKeyIndex(columns, file);
  const manifest = new ColumnarManifest(meta, columns, index, digest, file);
  if (!lazyIndex) manifest.checkUniqueKeys();
  return manifest;
}

/** Throws the SchemaError describing why entry i failed validateColumns' fast check. */
function describeEntryFault(
  c: SchemaChecker,
  meta: ManifestMeta,
  columns: ManifestColumns,
  i: number,
  dimsAt: number,
  curFile: number,
  cursor: number,
): never {
  const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  if (columns.tensor.lengthOf(i) === 0) c.fail(`entries.tensor[${i}]`, 'a non-empty string', '');
  const sr = columns.shard_rank[i];
  if (!isCount(sr)) c.fail(`entries.shard_rank[${i}]`, 'an integer >= 0', sr);
  const fi = columns.file[i] as number;
  if (!isCount(fi) || fi >= meta.files.length)
    c.fail(`entries.file[${i}]`, `an index into files (0..${meta.files.length - 1})`, fi);
  const off = columns.file_offset[i];
  if (!isCount(off)) c.fail(`entries.file_offset[${i}]`, 'an integer >= 0', off);
  const nb = columns.nbytes[i];
  if (!isCount(nb)) c.fail(`entries.nbytes[${i}]`, 'an integer >= 0', nb);
  const dt = columns.dtype[i];
  if (typeof dt !== 'number' || !Number.isInteger(dt) || dt < -1 || dt >= meta.dtypes.length)
    c.fail(`entries.dtype[${i}]`, `-1 or an index into dtypes (0..${meta.dtypes.length - 1})`, dt);
  const nd = columns.ndim[i] as number;
  if (typeof nd !== 'number' || !Number.isInteger(nd) || nd < -1)
    c.fail(`entries.ndim[${i}]`, 'an integer >= -1', nd);
  for (let k = 0; k < nd; k++) {
    if (!isCount(columns.dims[dimsAt + k]))
      c.fail(`entries.dims[${dimsAt + k}]`, 'an integer >= 0', columns.dims[dimsAt + k]);
  }
  if (fi !== curFile) {
    if (fi < curFile)
      c.fail(
        `entries.file[${i}]`,
        `entries grouped by file in files order (file ${curFile} came before)`,
        fi,
      );
    if (curFile >= 0) {
      const f = meta.files[curFile] as ManifestFile;
      if (cursor !== f.size)
        c.fail(
          `entries (file ${JSON.stringify(f.path)})`,
          `entries covering the file's ${f.size} bytes`,
          `${cursor} bytes covered before entry ${i}`,
        );
    }
    const f = meta.files[fi] as ManifestFile;
    const kind = columns.kind[i];
    if (f.kind === 'file' && kind !== 'f')
      c.fail(`entries.kind[${i}]`, `"f" (${f.path} is a whole file)`, kind);
    if (f.kind === 'safetensors' && kind !== 'h')
      c.fail(`entries.kind[${i}]`, `"h" (the first entry of safetensors file ${f.path} is its header)`, kind);
    cursor = 0;
  } else if (columns.kind[i] !== 't') {
    c.fail(`entries.kind[${i}]`, '"t" (only tensors follow a header)', columns.kind[i]);
  }
  if (off !== cursor)
    c.fail(
      `entries.file_offset[${i}]`,
      `${cursor} (entries of ${(meta.files[fi] as ManifestFile).path} must be contiguous, in offset order)`,
      off,
    );
  throw new HotweightsError('HW_INTERNAL', `manifest entry ${i} failed validation for no reason found`);
}

/** Entry names from their concatenation and a u32 column of their lengths (UTF-16 units). */
function decodeNames(c: SchemaChecker, text: unknown, lengths: unknown, n: number): NameColumn {
  const all = c.string(text, 'entries.tensor');
  const len = decodeColumn(c, lengths, 'entries.tensor_length', Uint32Array, n, `${n} u32 name lengths`);
  const starts = new Uint32Array(n + 1);
  let at = 0;
  for (let i = 0; i < n; i++) {
    at += len[i] as number;
    if (at > all.length)
      c.fail(
        `entries.tensor_length[${i}]`,
        `lengths adding up to the ${all.length} characters of entries.tensor`,
        `${at} characters by entry ${i}`,
      );
    starts[i + 1] = at;
  }
  if (at !== all.length)
    c.fail(
      'entries.tensor',
      `${at} characters (the sum of entries.tensor_length)`,
      `${all.length} characters`,
    );
  return new NameColumn(all, starts);
}

/** Parses and validates manifest JSON text; `file` names it in errors. */
export function parseManifest(
  text: string,
  file?: string,
  options: ManifestLoadOptions = {},
): ColumnarManifest {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new SchemaError({
      file,
      field: '(root)',
      expected: 'valid JSON',
      got: (err as Error).message,
      cause: err,
    });
  }
  return validateManifest(value, file, options);
}

/** Validates a parsed manifest document. */
export interface ManifestLoadOptions {
  /**
   * Recompute the content digest and compare it with the stored one (catches edits made after
   * publishing). Costs a pass over every column; loads for planning skip it.
   */
  readonly verifyDigest?: boolean;
  /**
   * Build the key index (and so detect duplicate keys) on the first lookup instead of at load.
   * For a previous manifest that is only looked up when the layout changed.
   */
  readonly lazyIndex?: boolean;
  /**
   * Map a binary manifest file (read-only, every page faulted in at once) instead of reading it
   * into new memory: for a 100 MB manifest most of a read's cost is faulting in and copying fresh
   * pages. The columns are then views of the file's pages, so the file must not be changed in
   * place while the manifest is in use (publish replaces files by rename, which is safe; call
   * checkManifestFileUnchanged before acting on the result). Falls back to reading for JSON
   * manifests or when @hotweights/shm cannot load.
   */
  readonly map?: boolean;
}

export function validateManifest(
  value: unknown,
  file?: string,
  options: ManifestLoadOptions = {},
): ColumnarManifest {
  const c: SchemaChecker = new SchemaChecker(file);
  const o = c.object(value, '(root)');
  if (o.schema !== MANIFEST_SCHEMA) c.fail('schema', JSON.stringify(MANIFEST_SCHEMA), o.schema);
  if (o.manifest_version !== MANIFEST_VERSION)
    c.fail(
      'manifest_version',
      `${MANIFEST_VERSION} (this hotweights reads manifest_version ${MANIFEST_VERSION} as JSON and ${BINARY_MANIFEST_VERSION} as binary; republish the checkpoint with \`hotweights publish\` to rewrite an older manifest)`,
      o.manifest_version,
    );
  const { meta, perFile, hashBytes } = readManifestMeta(c, o);
  const e = c.object(o.entries, 'entries');
  const count = c.count(e.count, 'entries.count');
  // file and file_offset are implied: each file's entries are consecutive and start at 0.
  const total = perFile.reduce((a, b) => a + b, 0);
  if (total !== count) c.fail('files[].entries', `entry counts adding up to entries.count (${count})`, total);
  const nbytes = decodeColumn(c, e.nbytes, 'entries.nbytes', Float64Array, count, `${count} f64 byte counts`);
  const ndim = decodeColumn(c, e.ndim, 'entries.ndim', Int32Array, count, `${count} i32 shape ranks`);
  let dimCount = 0;
  for (let i = 0; i < count; i++) {
    const nd = ndim[i] as number;
    if (nd < -1) c.fail(`entries.ndim[${i}]`, 'an integer >= -1', nd);
    if (nd > 0) dimCount += nd;
  }
  const { file: fileCol, file_offset: offsetCol } = impliedPlaces(perFile, nbytes);
  const columns: ManifestColumns = {
    tensor: decodeNames(c, e.tensor, e.tensor_length, count),
    shard_rank: decodeColumn(c, e.shard_rank, 'entries.shard_rank', Uint32Array, count, `${count} u32 ranks`),
    kind: c.string(e.kind, 'entries.kind'),
    file: fileCol,
    file_offset: offsetCol,
    nbytes,
    dtype: decodeColumn(c, e.dtype, 'entries.dtype', Int32Array, count, `${count} i32 dtype indexes`),
    ndim,
    dims: decodeColumn(
      c,
      e.dims,
      'entries.dims',
      Float64Array,
      dimCount,
      `${dimCount} f64 dims (sum of ndim)`,
    ),
    hash: decodeColumn(
      c,
      e.hash,
      'entries.hash',
      Uint8Array,
      count * hashBytes,
      `${count} raw ${meta.hash_algo} digests of ${hashBytes} bytes`,
    ),
  };
  const digest = readStoredDigest(c, o.digest);
  const manifest = validateColumns(meta, columns, file, digest, options.lazyIndex === true);
  if (options.verifyDigest && digest !== undefined) manifest.verifyDigest(file);
  return manifest;
}

/**
 * Metadata common to both formats (everything but the entry columns), checked: files (confined,
 * unique paths with their entry counts), dtypes, version, model id, hash algorithm.
 */
export function readManifestMeta(
  c: SchemaChecker,
  o: JsonObject,
): { meta: ManifestMeta; perFile: number[]; hashBytes: number } {
  const paths = new Set<string>();
  const perFile: number[] = [];
  const files = c.array(o.files, 'files').map((raw, i): ManifestFile => {
    const f = c.object(raw, `files[${i}]`);
    const path = c.relativePath(f.path, `files[${i}].path`);
    if (paths.has(path)) c.fail(`files[${i}].path`, 'a path not listed twice', path);
    paths.add(path);
    perFile.push(c.count(f.entries, `files[${i}].entries`, { min: 1 }));
    return {
      path,
      size: c.count(f.size, `files[${i}].size`),
      kind: c.oneOf(f.kind, `files[${i}].kind`, ['safetensors', 'file'] as const),
    };
  });
  const dtypes = c.array(o.dtypes, 'dtypes').map((d, i) => c.string(d, `dtypes[${i}]`, { nonEmpty: true }));
  const meta: ManifestMeta = {
    version: c.string(o.version, 'version', { nonEmpty: true }),
    model_id: c.nullableString(o.model_id, 'model_id'),
    created_at: c.string(o.created_at, 'created_at'),
    checkpoint_root: c.nullableString(o.checkpoint_root, 'checkpoint_root'),
    hash_algo: c.string(o.hash_algo, 'hash_algo', { nonEmpty: true }),
    files,
    dtypes,
  };
  const hashHex = HASH_HEX_LENGTH[meta.hash_algo];
  if (hashHex === undefined)
    c.fail('hash_algo', `one of ${Object.keys(HASH_HEX_LENGTH).join(', ')}`, meta.hash_algo);
  return { meta, perFile, hashBytes: hashHex / 2 };
}

/** The stored digest, checked for form, or undefined when absent. */
export function readStoredDigest(c: SchemaChecker, value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const digest = c.string(value, 'digest');
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) c.fail('digest', 'a digest "sha256:<64 hex digits>"', digest);
  return digest;
}

/** File index and offset of every entry, implied by the per-file counts and the sizes. */
export function impliedPlaces(
  perFile: readonly number[],
  nbytes: Float64Array,
): { file: Uint32Array; file_offset: Float64Array } {
  const count = nbytes.length;
  const fileCol = new Uint32Array(count);
  const offsetCol = new Float64Array(count);
  let at = 0;
  for (let fi = 0; fi < perFile.length; fi++) {
    const n = perFile[fi] as number;
    let offset = 0;
    // A bad count is reported by the caller (counts must add up); never write past the columns.
    for (let k = 0; k < n && at < count; k++, at++) {
      fileCol[at] = fi;
      offsetCol[at] = offset;
      offset += nbytes[at] as number;
    }
  }
  return { file: fileCol, file_offset: offsetCol };
}

/** Entry columns in the order serializeManifest writes them, each on a line of its own. */
const STORED_COLUMNS = [
  'tensor',
  'tensor_length',
  'shard_rank',
  'kind',
  'nbytes',
  'dtype',
  'ndim',
  'dims',
  'hash',
] as const;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/**
 * The document with the big column strings cut out, or null when the file is not laid out as
 * serializeManifest writes it (then the caller parses it whole). JSON forbids raw newlines inside
 * strings, so a line starting `    "hash": "` is a key outside any string, and a value without
 * backslashes ends at the next quote. Everything else (metadata, files, the structure around the
 * columns) still goes through JSON.parse, which checks the syntax; the loader then validates the
 * columns as usual. This skips scanning ~100 MB of column text for a million entries.
 */
function cutColumns(bytes: Buffer): { doc: unknown; columns: Map<string, string> } | null {
  const parts: Buffer[] = [];
  const columns = new Map<string, string>();
  let from = 0;
  for (const name of STORED_COLUMNS) {
    const marker = Buffer.from(`\n    "${name}": "`);
    const at = bytes.indexOf(marker, from);
    if (at < 0) return null;
    const start = at + marker.length;
    const end = bytes.indexOf(QUOTE, start);
    if (end < 0) return null;
    const backslash = bytes.indexOf(BACKSLASH, start);
    if (backslash >= 0 && backslash < end) return null;
    const raw = bytes.subarray(start, end);
    columns.set(name, isAscii(raw) ? raw.toString('latin1') : raw.toString('utf8'));
    parts.push(bytes.subarray(from, start));
    from = end;
  }
  parts.push(bytes.subarray(from));
  let doc: unknown;
  try {
    doc = JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    return null;
  }
  const entries = (doc as { entries?: Record<string, unknown> } | null)?.entries;
  if (typeof entries !== 'object' || entries === null) return null;
  for (const name of STORED_COLUMNS) if (entries[name] !== '') return null;
  for (const [name, value] of columns) entries[name] = value;
  return { doc, columns };
}

/**
 * Reads a file as text. Manifests are almost always ASCII; latin1 decoding is then identical and
 * about twice as fast as UTF-8 decoding of a 100+ MB file.
 */
function decodeText(bytes: Buffer): string {
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

type ShmModule = typeof shmModule;

/** @hotweights/shm loads its addon on this first call, never at import. */
async function shmOrNull(): Promise<ShmModule | null> {
  return shmModule.shmAvailable() ? shmModule : null;
}

/** Identity of a mapped manifest file when it was mapped (see checkManifestFileUnchanged). */
interface MappedFile {
  readonly path: string;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

const mappedFiles = new WeakMap<ColumnarManifest, MappedFile>();

/** A binary manifest file's bytes as a read-only mapping, or null (not binary, no shm, empty). */
async function mapManifest(path: string): Promise<{ bytes: Buffer; file: MappedFile } | null> {
  const shm = await shmOrNull();
  if (!shm) return null;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null; // the read that follows reports it
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.size < 8n || st.size > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8 || !isBinaryManifest(head)) return null;
    const range = shm.mapRangeFd(fd, 0, Number(st.size), { advice: 'populate' });
    const { view } = range;
    return {
      bytes: Buffer.from(view.buffer, view.byteOffset, view.byteLength),
      file: { path, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs },
    };
  } finally {
    closeSync(fd);
  }
}

/**
 * For a manifest loaded with `map: true`: throws when its file was changed or replaced since it
 * was mapped (its bytes may then have changed under the validated columns). No-op otherwise.
 */
export function checkManifestFileUnchanged(manifest: ColumnarManifest): void {
  const m = mappedFiles.get(manifest);
  if (!m) return;
  let changed: string | undefined;
  try {
    const st = statSync(m.path, { bigint: true });
    if (st.dev !== m.dev || st.ino !== m.ino) changed = 'was replaced';
    else if (st.size !== m.size || st.mtimeNs !== m.mtimeNs || st.ctimeNs !== m.ctimeNs)
      changed = 'was modified';
  } catch (err) {
    changed = `can no longer be read (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`;
  }
  if (changed)
    throw new HotweightsError(
      'HW_SCHEMA',
      `manifest ${m.path} ${changed} while it was in use: run the command again`,
      { details: { file: m.path } },
    );
}

/** Reads, parses and validates a manifest file: binary (manifest_version 3) or JSON (2). */
export async function loadManifest(
  path: string,
  options: ManifestLoadOptions = {},
): Promise<ColumnarManifest> {
  if (options.map) {
    const mapped = await mapManifest(path);
    if (mapped) {
      const manifest = parseManifestBinary(mapped.bytes, path, options);
      mappedFiles.set(manifest, mapped.file);
      return manifest;
    }
  }
  let bytes: Buffer | null;
  try {
    bytes = await readFile(path);
  } catch (err) {
    throw new HotweightsError(
      'HW_NOT_FOUND',
      `cannot read manifest ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err, details: { file: path } },
    );
  }
  if (isBinaryManifest(bytes)) return parseManifestBinary(bytes, path, options);
  const cut = cutColumns(bytes);
  if (cut) {
    bytes = null; // let the file's bytes go before the columns are decoded (lower peak memory)
    return validateManifest(cut.doc, path, options);
  }
  const text = decodeText(bytes);
  bytes = null;
  return parseManifest(text, path, options);
}

/** Columns of any Manifest (a ColumnarManifest's own, or rebuilt from its entries). */
export function toColumnar(manifest: Manifest): ColumnarManifest {
  if (manifest instanceof ColumnarManifest) return manifest;
  const entries: ManifestEntry[] = [];
  for (let i = 0; i < manifest.size; i++) entries.push(manifest.entry(i));
  return buildManifest(
    {
      version: manifest.version,
      model_id: manifest.model_id,
      created_at: manifest.created_at,
      checkpoint_root: manifest.checkpoint_root ?? null,
      hash_algo: manifest.hash_algo,
      files: manifest.files,
    },
    entries,
  );
}

/**
 * The on-disk JSON text. Metadata and files are readable (one file per line); the columns are one
 * line each. Ends with the digest so a reader can check the content.
 */
export function serializeManifest(manifest: Manifest): string {
  const m = toColumnar(manifest);
  const head = {
    schema: MANIFEST_SCHEMA,
    manifest_version: MANIFEST_VERSION,
    version: m.version,
    model_id: m.model_id,
    created_at: m.created_at,
    checkpoint_root: m.checkpoint_root,
    hash_algo: m.hash_algo,
    total_bytes: m.total_bytes,
  };
  const parts: string[] = [];
  for (const [k, v] of Object.entries(head)) parts.push(`${JSON.stringify(k)}: ${JSON.stringify(v)}`);
  const counts = entriesPerFile(m.columns, m.files.length);
  const files = m.files.map((f, i) =>
    JSON.stringify({ path: f.path, size: f.size, kind: f.kind, entries: counts[i] }),
  );
  parts.push(`"files": [${files.length ? '\n    ' : ''}${files.join(',\n    ')}]`);
  parts.push(`"dtypes": ${JSON.stringify(m.dtypes)}`);
  const c = m.columns;
  const cols = [
    `"count": ${m.size}`,
    `"tensor": ${JSON.stringify(c.tensor.text)}`,
    `"tensor_length": "${encodeColumn(c.tensor.lengths())}"`,
    `"shard_rank": "${encodeColumn(c.shard_rank)}"`,
    `"kind": ${JSON.stringify(c.kind)}`,
    `"nbytes": "${encodeColumn(c.nbytes)}"`,
    `"dtype": "${encodeColumn(c.dtype)}"`,
    `"ndim": "${encodeColumn(c.ndim)}"`,
    `"dims": "${encodeColumn(c.dims)}"`,
    `"hash": "${encodeColumn(c.hash)}"`,
  ];
  parts.push(`"entries": {\n    ${cols.join(',\n    ')}\n  }`);
  parts.push(`"digest": ${JSON.stringify(m.digest)}`);
  return `{\n  ${parts.join(',\n  ')}\n}\n`;
}
