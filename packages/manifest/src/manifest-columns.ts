/**
 * The manifest's columns and how they are stored (manifest_version 2, the JSON form).
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
import { Buffer } from 'node:buffer';
import { endianness } from 'node:os';
import type { ManifestEntryKind, ManifestFile } from '@hotweights/core';
import type { NameColumn } from './name-column.js';
import type { SchemaChecker } from './schema-check.js';

/** Bumped only on incompatible changes of the on-disk JSON layout. */
export const MANIFEST_VERSION = 2 as const;

/** Bumped only on incompatible changes of the binary layout (manifest-binary.ts). */
export const BINARY_MANIFEST_VERSION = 3 as const;

export const KIND_CODE: Record<ManifestEntryKind, string> = { tensor: 't', header: 'h', file: 'f' };
export const KIND_OF_CODE: Record<string, ManifestEntryKind> = { t: 'tensor', h: 'header', f: 'file' };

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

export type NumericArray = Uint32Array | Int32Array | Float64Array;
type NumericArrayType = Uint32ArrayConstructor | Int32ArrayConstructor | Float64ArrayConstructor;

export const LITTLE_ENDIAN = endianness() === 'LE';

/** The little-endian bytes of a typed array (a view, unless the machine is big-endian). */
export function leBytes(a: NumericArray | Uint8Array): Buffer {
  const b = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN || a.BYTES_PER_ELEMENT === 1) return b;
  const copy = Buffer.from(b);
  if (a.BYTES_PER_ELEMENT === 4) copy.swap32();
  else copy.swap64();
  return copy;
}

/** Base64 of a column's little-endian bytes, as stored on disk. */
export function encodeColumn(a: NumericArray | Uint8Array): string {
  return leBytes(a).toString('base64');
}

/**
 * Decodes a base64 column of `n` values. Buffer's decoder silently skips characters that are not
 * base64, so the text length and the decoded length are both checked: truncated, padded or
 * corrupted text gives an error naming the field instead of a shifted column.
 */
export function decodeColumn<T extends NumericArrayType | Uint8ArrayConstructor>(
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

/** Entries per file, from the file column (entries are grouped by file in files order). */
export function entriesPerFile(columns: ManifestColumns, files: number): number[] {
  const counts = new Array<number>(files).fill(0);
  for (let i = 0; i < columns.file.length; i++) (counts[columns.file[i] as number] as number)++;
  return counts;
}

/**
 * `columns` with `file` and `file_offset` implied by the per-file counts and `nbytes` (see
 * impliedPlaces), computed on first read: a manifest only compared against (the previous one of a
 * plan) never builds them (12 MB at a million entries). validateColumns checks them without
 * reading them, given `perFile`.
 */
export function withImpliedPlaces(
  columns: Omit<ManifestColumns, 'file' | 'file_offset'>,
  perFile: readonly number[],
): ManifestColumns {
  // Accessors that stay (a property redefined from accessor to value would turn the object into
  // a slow dictionary, and every column read through it with it).
  let places: { file: Uint32Array; file_offset: Float64Array } | undefined;
  const built = () => {
    places ??= impliedPlaces(perFile, columns.nbytes);
    return places;
  };
  Object.defineProperty(columns, 'file', { get: () => built().file, enumerable: true });
  Object.defineProperty(columns, 'file_offset', { get: () => built().file_offset, enumerable: true });
  return columns as ManifestColumns;
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
