/**
 * The manifest's on-disk format and its in-memory columnar implementation.
 *
 * On disk (schema `hotweights.manifest`, manifest_version 1) the entries are stored as columns:
 * paths once in `files` (with each file's entry count), dtypes once in `dtypes`, one array per
 * numeric field, shapes as a flat dims array plus a per-entry rank, and all hashes as one
 * concatenated hex string of fixed width. A million entries is ~120 MB of JSON read by one
 * JSON.parse, where one object per entry would be several times larger and slower.
 *
 * Entries are ordered by file (files sorted by path) and, inside a file, by offset; a file's
 * entries cover it exactly (a safetensors file: its header entry, then its tensors; any other file:
 * one whole-file entry). So an entry's file and offset are implied by the counts and sizes and are
 * not stored; the loader derives them and checks the rest, so consumers can rely on it.
 */
import { isAscii } from 'node:buffer';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { HotweightsError, SchemaError } from './errors.js';
import {
  MANIFEST_SCHEMA,
  type Manifest,
  type ManifestEntry,
  type ManifestEntryKind,
  type ManifestFile,
} from './manifest.js';
import { canonicalJson, type JsonObject, SchemaChecker } from './schema-check.js';

/** Bumped only on incompatible changes of the on-disk layout. */
export const MANIFEST_VERSION = 1 as const;

/** Hex digits of each supported hash algorithm's digest. */
export const HASH_HEX_LENGTH: Readonly<Record<string, number>> = Object.freeze({
  blake3: 64,
  'xxh3-64': 16,
  sha256: 64,
});

const KIND_CODE: Record<ManifestEntryKind, string> = { tensor: 't', header: 'h', file: 'f' };
const KIND_OF_CODE: Record<string, ManifestEntryKind> = { t: 'tensor', h: 'header', f: 'file' };

/** The columns of a manifest; index i of every column describes entry i. */
export interface ManifestColumns {
  readonly tensor: readonly string[];
  readonly shard_rank: readonly number[];
  /** One character per entry: `t` tensor, `h` header, `f` file. */
  readonly kind: string;
  /** Index into `files`. Derived on load from each file's entry count (not stored). */
  readonly file: ArrayLike<number>;
  /** Derived on load: entries of a file are contiguous from offset 0 (not stored). */
  readonly file_offset: ArrayLike<number>;
  readonly nbytes: readonly number[];
  /** Index into `dtypes`, or -1 for none. */
  readonly dtype: readonly number[];
  /** Number of dims of the entry's shape, or -1 for none. */
  readonly ndim: readonly number[];
  /** All shapes' dims, concatenated in entry order. */
  readonly dims: readonly number[];
  /** All hashes' hex digits, concatenated, `HASH_HEX_LENGTH[hash_algo]` per entry. */
  readonly hash: string;
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
  private readonly hashLen: number;
  private shapeStart: Uint32Array | undefined;
  private index: KeyIndex | undefined;
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
    this.hashLen = HASH_HEX_LENGTH[meta.hash_algo] ?? 0;
    this.index = index;
    // A loaded manifest keeps its stored digest (checked on demand by verifyDigest); computing it
    // means hashing every column, which would double the load time of a large manifest.
    this.digest = digest ?? computeManifestDigest(meta, columns);
  }

  key(i: number): string {
    return `${this.columns.tensor[i]}:${this.columns.shard_rank[i]}`;
  }

  kindOf(i: number): ManifestEntryKind {
    return KIND_OF_CODE[this.columns.kind[i] as string] as ManifestEntryKind;
  }

  /** True when entry i has the same hash as entry j of `other` (same algorithm), without copies. */
  sameHash(i: number, other: ColumnarManifest, j: number): boolean {
    if (other.hash_algo !== this.hash_algo) return false;
    const len = this.hashLen;
    return this.columns.hash.startsWith(other.columns.hash.slice(j * len, (j + 1) * len), i * len);
  }

  /** `<algo>:<hex>` of entry i, without materialising the entry. */
  hashOf(i: number): string {
    return `${this.hash_algo}:${this.columns.hash.slice(i * this.hashLen, (i + 1) * this.hashLen)}`;
  }

  private shapeOf(i: number): number[] | null {
    const ndim = this.columns.ndim[i] as number;
    if (ndim < 0) return null;
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
    const start = this.shapeStart[i] as number;
    return this.columns.dims.slice(start, start + ndim) as number[];
  }

  entry(i: number): ManifestEntry {
    if (!Number.isInteger(i) || i < 0 || i >= this.size)
      throw new RangeError(`manifest entry ${i} out of range 0..${this.size - 1}`);
    const c = this.columns;
    const dtype = c.dtype[i] as number;
    return {
      key: this.key(i),
      tensor: c.tensor[i] as string,
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

  /** Throws a SchemaError naming a duplicate key (a no-op when the index is already built). */
  checkUniqueKeys(): void {
    if (!this.index) this.index = buildKeyIndex(this.columns, this.source);
  }

  /** Index of the entry of (tensor, shard_rank), or -1; no key string is built. */
  indexOfTensor(tensor: string, shardRank: number): number {
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
  private readonly table: Int32Array;
  private readonly mask: number;

  constructor(
    private readonly tensor: readonly string[],
    private readonly rank: readonly number[],
    file: string | undefined,
  ) {
    const n = tensor.length;
    let size = 16;
    while (size < n * 2) size *= 2;
    this.table = new Int32Array(size);
    this.mask = size - 1;
    for (let i = 0; i < n; i++) {
      const t = tensor[i] as string;
      const r = rank[i] as number;
      let p = KeyIndex.hash(t, r) & this.mask;
      for (;;) {
        const at = this.table[p] as number;
        if (at === 0) break;
        if (tensor[at - 1] === t && rank[at - 1] === r) {
          const key = `${t}:${r}`;
          throw new SchemaError({
            file,
            field: `entries.tensor[${i}]`,
            expected: `a unique key (tensor:shard_rank); ${JSON.stringify(key)} is also entry ${at - 1}`,
            got: JSON.stringify(key),
          });
        }
        p = (p + 1) & this.mask;
      }
      this.table[p] = i + 1;
    }
  }

  private static hash(t: string, r: number): number {
    let h = 0x811c9dc5 ^ r;
    for (let k = 0; k < t.length; k++) h = Math.imul(h ^ t.charCodeAt(k), 16777619);
    return h >>> 0;
  }

  get(t: string, r: number): number {
    let p = KeyIndex.hash(t, r) & this.mask;
    for (;;) {
      const at = this.table[p] as number;
      if (at === 0) return -1;
      if (this.tensor[at - 1] === t && this.rank[at - 1] === r) return at - 1;
      p = (p + 1) & this.mask;
    }
  }
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
    h.update(JSON.stringify(columns[name]));
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
  const columns: ManifestColumns = { ...cols, kind: cols.kind.join(''), hash: cols.hash.join('') };
  const full: ManifestMeta = { ...meta, files, dtypes };
  return validateColumns(full, columns, undefined);
}

function compareStrings(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Checks lengths, values and coverage of the columns; returns the manifest. */
function validateColumns(
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
  for (const name of ['shard_rank', 'file', 'file_offset', 'nbytes', 'dtype', 'ndim'] as const) {
    if (columns[name].length !== n)
      c.fail(`entries.${name}`, `${n} values (one per entry)`, columns[name].length);
  }
  if (columns.kind.length !== n)
    c.fail('entries.kind', `${n} characters (one per entry)`, columns.kind.length);
  if (columns.hash.length !== n * hashLen)
    c.fail('entries.hash', `${n * hashLen} hex digits (${hashLen} per entry)`, columns.hash.length);
  if (!/^[0-9a-f]*$/.test(columns.hash)) c.fail('entries.hash', 'lowercase hex digits only');
  if (!/^[thf]*$/.test(columns.kind)) c.fail('entries.kind', 'only the characters t, h, f');
  const isCount = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
  let dimsAt = 0;
  let curFile = -1;
  let cursor = 0;
  const closeFile = (i: number) => {
    if (curFile < 0) return;
    const f = meta.files[curFile] as ManifestFile;
    if (cursor !== f.size)
      c.fail(
        `entries (file ${JSON.stringify(f.path)})`,
        `entries covering the file's ${f.size} bytes`,
        `${cursor} bytes covered before entry ${i}`,
      );
  };
  for (let i = 0; i < n; i++) {
    const t = columns.tensor[i];
    if (typeof t !== 'string' || t.length === 0) c.fail(`entries.tensor[${i}]`, 'a non-empty string', t);
    const sr = columns.shard_rank[i];
    if (!isCount(sr)) c.fail(`entries.shard_rank[${i}]`, 'an integer >= 0', sr);
    const fi = columns.file[i];
    if (!isCount(fi) || fi >= meta.files.length)
      c.fail(`entries.file[${i}]`, `an index into files (0..${meta.files.length - 1})`, fi);
    const off = columns.file_offset[i];
    if (!isCount(off)) c.fail(`entries.file_offset[${i}]`, 'an integer >= 0', off);
    const nb = columns.nbytes[i];
    if (!isCount(nb)) c.fail(`entries.nbytes[${i}]`, 'an integer >= 0', nb);
    const dt = columns.dtype[i];
    if (typeof dt !== 'number' || !Number.isInteger(dt) || dt < -1 || dt >= meta.dtypes.length)
      c.fail(`entries.dtype[${i}]`, `-1 or an index into dtypes (0..${meta.dtypes.length - 1})`, dt);
    const nd = columns.ndim[i];
    if (typeof nd !== 'number' || !Number.isInteger(nd) || nd < -1)
      c.fail(`entries.ndim[${i}]`, 'an integer >= -1', nd);
    for (let k = 0; k < nd; k++) {
      if (!isCount(columns.dims[dimsAt + k]))
        c.fail(`entries.dims[${dimsAt + k}]`, 'an integer >= 0', columns.dims[dimsAt + k]);
    }
    if (nd > 0) dimsAt += nd;
    if (fi !== curFile) {
      if (fi < curFile)
        c.fail(
          `entries.file[${i}]`,
          `entries grouped by file in files order (file ${curFile} came before)`,
          fi,
        );
      closeFile(i);
      curFile = fi;
      cursor = 0;
      const f = meta.files[fi] as ManifestFile;
      const kind = columns.kind[i];
      if (f.kind === 'file' && kind !== 'f')
        c.fail(`entries.kind[${i}]`, `"f" (${f.path} is a whole file)`, kind);
      if (f.kind === 'safetensors' && kind !== 'h')
        c.fail(
          `entries.kind[${i}]`,
          `"h" (the first entry of safetensors file ${f.path} is its header)`,
          kind,
        );
    } else if (columns.kind[i] !== 't') {
      c.fail(`entries.kind[${i}]`, '"t" (only tensors follow a header)', columns.kind[i]);
    }
    if (off !== cursor)
      c.fail(
        `entries.file_offset[${i}]`,
        `${cursor} (entries of ${(meta.files[fi] as ManifestFile).path} must be contiguous, in offset order)`,
        off,
      );
    cursor = off + nb;
  }
  closeFile(n);
  if (dimsAt !== columns.dims.length)
    c.fail('entries.dims', `${dimsAt} values (sum of ndim)`, columns.dims.length);
  // Every file must have entries (an empty file still gets one zero-byte entry).
  const seen = new Uint8Array(meta.files.length);
  for (let i = 0; i < n; i++) seen[columns.file[i] as number] = 1;
  for (const [i, f] of meta.files.entries()) {
    if (!seen[i]) c.fail(`files[${i}]`, `at least one entry for ${JSON.stringify(f.path)}`);
  }
  const index = lazyIndex ? undefined : buildKeyIndex(columns, file);
  return new ColumnarManifest(meta, columns, index, digest, file);
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
      `${MANIFEST_VERSION} (this hotweights reads manifest_version ${MANIFEST_VERSION})`,
      o.manifest_version,
    );
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
  const e = c.object(o.entries, 'entries');
  const count = c.count(e.count, 'entries.count');
  const arr = (name: string): number[] => c.array(e[name], `entries.${name}`) as number[];
  const nbytes = arr('nbytes');
  // file and file_offset are implied: each file's entries are consecutive and start at 0.
  const total = perFile.reduce((a, b) => a + b, 0);
  if (total !== count) c.fail('files[].entries', `entry counts adding up to entries.count (${count})`, total);
  if (nbytes.length !== count) c.fail('entries.nbytes', `${count} values (one per entry)`, nbytes.length);
  const fileCol = new Uint32Array(count);
  const offsetCol = new Float64Array(count);
  let at = 0;
  for (const [fi, n] of perFile.entries()) {
    let offset = 0;
    for (let k = 0; k < n; k++, at++) {
      fileCol[at] = fi;
      offsetCol[at] = offset;
      const nb = nbytes[at];
      offset += typeof nb === 'number' ? nb : 0;
    }
  }
  const columns: ManifestColumns = {
    tensor: c.array(e.tensor, 'entries.tensor') as string[],
    shard_rank: arr('shard_rank'),
    kind: c.string(e.kind, 'entries.kind'),
    file: fileCol,
    file_offset: offsetCol,
    nbytes,
    dtype: arr('dtype'),
    ndim: arr('ndim'),
    dims: arr('dims'),
    hash: c.string(e.hash, 'entries.hash'),
  };
  if (columns.tensor.length !== count)
    c.fail('entries.tensor', `${count} values (entries.count)`, columns.tensor.length);
  let digest: string | undefined;
  if (o.digest !== undefined) {
    digest = c.string(o.digest, 'digest');
    if (!/^sha256:[0-9a-f]{64}$/.test(digest)) c.fail('digest', 'a digest "sha256:<64 hex digits>"', digest);
  }
  const manifest = validateColumns(meta, columns, file, digest, options.lazyIndex === true);
  if (options.verifyDigest && digest !== undefined) manifest.verifyDigest(file);
  return manifest;
}

/**
 * Reads a file as text. Manifests are almost always ASCII; latin1 decoding is then identical and
 * about twice as fast as UTF-8 decoding of a 100+ MB file. A separate function so the byte buffer
 * is garbage before parsing starts (lower peak memory).
 */
async function readText(path: string): Promise<string> {
  const bytes = await readFile(path);
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
}

/** Reads, parses and validates a manifest file. */
export async function loadManifest(
  path: string,
  options: ManifestLoadOptions = {},
): Promise<ColumnarManifest> {
  let text: string;
  try {
    text = await readText(path);
  } catch (err) {
    throw new HotweightsError(
      'HW_NOT_FOUND',
      `cannot read manifest ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err, details: { file: path } },
    );
  }
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
  const cols = [
    `"count": ${m.size}`,
    ...COLUMN_ORDER.map((name) => `${JSON.stringify(name)}: ${JSON.stringify(m.columns[name])}`),
  ];
  parts.push(`"entries": {\n    ${cols.join(',\n    ')}\n  }`);
  parts.push(`"digest": ${JSON.stringify(m.digest)}`);
  return `{\n  ${parts.join(',\n  ')}\n}\n`;
}
