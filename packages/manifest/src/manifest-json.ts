/** The JSON form of a manifest (manifest_version 2): parse, validate, serialise. */
import { Buffer, isAscii } from 'node:buffer';
import { MANIFEST_SCHEMA, type Manifest, SchemaError } from '@hotweights/core';
import type { ColumnarManifest } from './columnar-manifest.js';
import { toColumnar } from './manifest-build.js';
import {
  BINARY_MANIFEST_VERSION,
  decodeColumn,
  encodeColumn,
  entriesPerFile,
  MANIFEST_VERSION,
  withImpliedPlaces,
} from './manifest-columns.js';
import {
  type ManifestLoadOptions,
  readManifestMeta,
  readStoredDigest,
  validateColumns,
} from './manifest-validate.js';
import { NameColumn } from './name-column.js';
import { SchemaChecker } from './schema-check.js';

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

/** Validates a parsed JSON manifest document. */
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
  const columns = withImpliedPlaces(
    {
      tensor: decodeNames(c, e.tensor, e.tensor_length, count),
      shard_rank: decodeColumn(
        c,
        e.shard_rank,
        'entries.shard_rank',
        Uint32Array,
        count,
        `${count} u32 ranks`,
      ),
      kind: c.string(e.kind, 'entries.kind'),
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
    },
    perFile,
  );
  const digest = readStoredDigest(c, o.digest, options.verifyDigest === true);
  const manifest = validateColumns(meta, columns, file, digest, options.lazyIndex === true, perFile);
  if (options.verifyDigest) manifest.verifyDigest(file);
  return manifest;
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
export function cutColumns(bytes: Buffer): { doc: unknown; columns: Map<string, string> } | null {
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
export function decodeText(bytes: Buffer): string {
  return isAscii(bytes) ? bytes.toString('latin1') : bytes.toString('utf8');
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
