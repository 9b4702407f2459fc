/** The manifest's content digest: the same for the JSON and binary forms of the same content. */
import { createHash } from 'node:crypto';
import { MANIFEST_SCHEMA } from '@hotweights/core';
import {
  entriesPerFile,
  leBytes,
  MANIFEST_VERSION,
  type ManifestColumns,
  type ManifestMeta,
  type NumericArray,
} from './manifest-columns.js';
import { NameColumn } from './name-column.js';
import { canonicalJson, type JsonObject } from './schema-check.js';

/**
 * The metadata the digest covers, as canonical JSON, given each file's entry count: everything
 * but created_at (republishing the same bytes as the same version gives the same digest) and
 * checkpoint_root.
 */
export function digestHead(
  meta: Pick<ManifestMeta, 'version' | 'model_id' | 'hash_algo' | 'files' | 'dtypes'>,
  entriesPerFile: readonly number[],
): string {
  const head: JsonObject = {
    schema: MANIFEST_SCHEMA,
    manifest_version: MANIFEST_VERSION,
    version: meta.version,
    model_id: meta.model_id,
    hash_algo: meta.hash_algo,
    files: meta.files.map((f, i) => ({
      path: f.path,
      size: f.size,
      kind: f.kind,
      entries: entriesPerFile[i],
    })),
    dtypes: meta.dtypes,
  };
  return canonicalJson(head);
}

/**
 * `sha256:<hex>` of the manifest's content: metadata (without created_at, so republishing the same
 * bytes as the same version gives the same digest) and every column. Independent of formatting.
 */
export function computeManifestDigest(meta: ManifestMeta, columns: ManifestColumns): string {
  const h = createHash('sha256');
  h.update(digestHead(meta, entriesPerFile(columns, meta.files.length)));
  for (const name of DIGEST_COLUMNS) {
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

/** The columns the digest covers, in order, each after a newline (names: bytes, then u32 lengths). */
export const DIGEST_COLUMNS = [
  'tensor',
  'shard_rank',
  'kind',
  'nbytes',
  'dtype',
  'ndim',
  'dims',
  'hash',
] as const satisfies readonly (keyof ManifestColumns)[];
