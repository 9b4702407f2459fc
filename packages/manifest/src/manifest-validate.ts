/**
 * Validation shared by both on-disk forms: the metadata (files, dtypes, hash algorithm), the stored
 * digest's form, and the decoded columns (lengths, ranges, coverage, unique keys).
 */
import { Buffer } from 'node:buffer';
import { HotweightsError, type ManifestFile } from '@hotweights/core';
import { ColumnarManifest } from './columnar-manifest.js';
import { HASH_ALGORITHMS, HASH_HEX_LENGTH } from './hash-algorithms.js';
import { buildKeyIndex } from './key-index.js';
import type { ManifestColumns, ManifestMeta } from './manifest-columns.js';
import { type JsonObject, SchemaChecker } from './schema-check.js';

/** How a manifest is loaded and checked. */
export interface ManifestLoadOptions {
  /**
   * Recompute the content digest and compare it with the stored one (catches edits made after
   * publishing). Costs a pass over every column. Default: true for loadManifest (a mapped load
   * checks in the background, see checkManifestFileUnchanged), false for the parse functions.
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
  if (hashHex === undefined) c.fail('hash_algo', `one of ${HASH_ALGORITHMS.join(', ')}`, meta.hash_algo);
  return { meta, perFile, hashBytes: hashHex / 2 };
}

/**
 * The stored digest, checked for form, or undefined when absent. `required` when the content is
 * to be verified: a manifest without one (or whose "digest" key was damaged) would otherwise load
 * unverified.
 */
export function readStoredDigest(c: SchemaChecker, value: unknown, required = false): string | undefined {
  if (value === undefined) {
    if (!required) return undefined;
    c.fail(
      'digest',
      'a stored digest "sha256:<64 hex digits>" to verify the content against (republish the checkpoint with `hotweights publish`)',
    );
  }
  const digest = c.string(value, 'digest');
  if (!/^sha256:[0-9a-f]{64}$/.test(digest)) c.fail('digest', 'a digest "sha256:<64 hex digits>"', digest);
  return digest;
}

/** Checks lengths, values and coverage of the columns; returns the manifest. */
export function validateColumns(
  meta: ManifestMeta,
  columns: ManifestColumns,
  file: string | undefined,
  digest?: string,
  lazyIndex = false,
  /**
   * Entries per file when `file` and `file_offset` are implied by them (withImpliedPlaces): they
   * hold by construction, so they are not read (nor built) here; the coverage checks still run.
   */
  impliedBy?: readonly number[],
): ColumnarManifest {
  const c: SchemaChecker = new SchemaChecker(file);
  const n = columns.tensor.length;
  const hashLen = HASH_HEX_LENGTH[meta.hash_algo] as number;
  if (hashLen === undefined) c.fail('hash_algo', `one of ${HASH_ALGORITHMS.join(', ')}`, meta.hash_algo);
  const hashBytes = hashLen / 2;
  // The loaders and buildManifest make these columns with one value per entry (decodeColumn, the
  // binary column lengths, impliedPlaces): these three length checks cannot fail through them.
  // Stryker disable BlockStatement,ArrayDeclaration: equivalent: the checks in this loop cannot fail through the loaders (above)
  for (const name of impliedBy
    ? (['shard_rank', 'nbytes', 'dtype', 'ndim'] as const)
    : (['shard_rank', 'file', 'file_offset', 'nbytes', 'dtype', 'ndim'] as const)) {
    if (columns[name].length !== n)
      // Stryker disable next-line StringLiteral: equivalent: a message no loader can make appear (above)
      c.fail(`entries.${name}`, `${n} values (one per entry)`, columns[name].length);
  }
  // Stryker restore BlockStatement,ArrayDeclaration
  if (columns.kind.length !== n)
    c.fail('entries.kind', `${n} characters (one per entry)`, columns.kind.length);
  if (columns.hash.length !== n * hashBytes)
    // Stryker disable next-line StringLiteral,ArithmeticOperator: equivalent: a message no loader can make appear (they check the hash column's length first)
    c.fail('entries.hash', `${n * hashBytes} bytes (${hashBytes} per entry)`, columns.hash.length);
  if (!/^[thf]*$/.test(columns.kind)) c.fail('entries.kind', 'only the characters t, h, f');
  if (!(impliedBy && entriesPassFastCheck(meta, columns, impliedBy)))
    checkEntries(c, meta, columns, impliedBy);
  const index = lazyIndex || columns.key_order ? undefined : buildKeyIndex(columns, file);
  const manifest = new ColumnarManifest(meta, columns, index, digest, file);
  if (!lazyIndex) manifest.checkUniqueKeys();
  return manifest;
}

/**
 * The pass over every entry (validateColumns): names, sizes, dtypes, shapes, kinds, and each file
 * covered exactly; throws the SchemaError of the first entry that fails.
 */
function checkEntries(
  c: SchemaChecker,
  meta: ManifestMeta,
  columns: ManifestColumns,
  impliedBy: readonly number[] | undefined,
): void {
  const n = columns.tensor.length;
  // One tight pass over typed arrays (a million entries: a few ms); a failure is then re-described
  // with its field and index by describeEntryFault.
  const starts = columns.tensor.starts;
  const { shard_rank: rankCol, nbytes: nbCol, dtype: dtCol, ndim: ndCol, dims: dimsCol, kind } = columns;
  const fileCol = impliedBy ? undefined : columns.file;
  const offCol = impliedBy ? undefined : columns.file_offset;
  // With implied places: the file of the entry at hand, and where the next file's entries start.
  let impliedFile = -1;
  let nextFileAt = 0;
  const fileCount = meta.files.length;
  const dtypeCount = meta.dtypes.length;
  const MAX = Number.MAX_SAFE_INTEGER;
  let dimsAt = 0;
  let curFile = -1;
  let cursor = 0;
  for (let i = 0; i < n; i++) {
    const sr = rankCol[i] as number;
    let fi: number;
    let off: number;
    // Stryker disable next-line LogicalOperator: equivalent: fileCol and offCol are both set or both unset (above)
    if (fileCol && offCol) {
      fi = fileCol[i] as number;
      off = offCol[i] as number;
    } else {
      // The loaders give each file at least one entry and counts adding up to n, so files never run
      // out before the entries do: the second condition only guards the read of impliedBy.
      // Stryker disable next-line ArithmeticOperator: equivalent: never the deciding condition (above)
      while (i === nextFileAt && impliedFile + 1 < fileCount)
        nextFileAt += (impliedBy as readonly number[])[++impliedFile] as number;
      fi = impliedFile;
      off = fi === curFile ? cursor : 0;
    }
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
      // A file's first entry starts at 0; checked before curFile moves on, so that a fault is
      // described against the file before it (describeEntryFault).
      ok = ok && (f.kind === 'file' ? k === 0x66 : k === 0x68) && off === 0;
      if (ok) {
        curFile = fi;
        cursor = 0;
      }
    } else if (ok) ok = kind.charCodeAt(i) === 0x74 && off === cursor;
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
    // Stryker disable next-line StringLiteral: equivalent: a message no loader can make appear (they size the dims column by the sum of ndim first)
    c.fail('entries.dims', `${dimsAt} values (sum of ndim)`, columns.dims.length);
  // Every file must have entries (an empty file still gets one zero-byte entry).
  const seen = new Uint8Array(fileCount);
  if (fileCol) for (let i = 0; i < n; i++) seen[fileCol[i] as number] = 1;
  else
    for (let f = 0; f < fileCount; f++) seen[f] = ((impliedBy as readonly number[])[f] as number) > 0 ? 1 : 0;
  for (const [i, f] of meta.files.entries()) {
    if (!seen[i]) c.fail(`files[${i}]`, `at least one entry for ${JSON.stringify(f.path)}`);
  }
}

/**
 * A faster check of the entry columns of a manifest whose files' places are implied (a native
 * one): true only for columns checkEntries passes; for false, checkEntries runs and says why.
 * Arguments: name offsets, nbytes, dtype, ndim, dims, kind (one byte per entry), entries per file,
 * file sizes, 1 per whole file (0 per safetensors file), and the number of dtypes.
 */
export type EntryCheck = (
  starts: Uint32Array,
  nbytes: Float64Array,
  dtype: Int32Array,
  ndim: Int32Array,
  dims: Float64Array,
  kind: Uint8Array,
  perFile: Uint32Array,
  fileSizes: Float64Array,
  wholeFile: Uint8Array,
  dtypeCount: number,
) => boolean;

let fastEntryCheck: EntryCheck | undefined;

/** Hands entry columns to `check` first (undefined: checked here only). See EntryCheck. */
export function useEntryCheck(check: EntryCheck | undefined): void {
  fastEntryCheck = check;
}

function entriesPassFastCheck(
  meta: ManifestMeta,
  columns: ManifestColumns,
  perFile: readonly number[],
): boolean {
  const check = fastEntryCheck;
  const { nbytes, dtype, ndim, dims } = columns;
  if (
    !check ||
    !(nbytes instanceof Float64Array) ||
    !(dtype instanceof Int32Array) ||
    !(ndim instanceof Int32Array) ||
    !(dims instanceof Float64Array)
  )
    return false;
  return check(
    columns.tensor.starts,
    nbytes,
    dtype,
    ndim,
    dims,
    // Stryker disable next-line StringLiteral: equivalent: kind holds only t, h and f (checked first), the same bytes in any encoding
    Buffer.from(columns.kind, 'latin1'),
    Uint32Array.from(perFile),
    Float64Array.from(meta.files, (f) => f.size),
    Uint8Array.from(meta.files, (f) => (f.kind === 'file' ? 1 : 0)),
    meta.dtypes.length,
  );
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
