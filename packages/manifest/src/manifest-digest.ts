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
