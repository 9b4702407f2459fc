/** Loading a manifest file, binary or JSON, read or mapped. */
import type { Buffer } from 'node:buffer';
import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { HotweightsError } from '@hotweights/core';
import type { ColumnarManifest } from './columnar-manifest.js';
import { assignDigestJob, dropDigestJob, finishDigestCheck, startDigestJob } from './digest-check.js';
import { isBinaryManifest, parseManifestBinary } from './manifest-binary.js';
import { cutColumns, decodeText, parseManifest, validateManifest } from './manifest-json.js';
import { type MappedFile, mapManifest } from './manifest-map.js';
import type { ManifestLoadOptions } from './manifest-validate.js';

const mappedFiles = new WeakMap<ColumnarManifest, MappedFile>();
/**
 * Mapped manifests from this size on have their digest checked on a worker thread; smaller ones
 * here at once (16 MiB hashes in ~10 ms, less than a worker takes to start).
 */
const BACKGROUND_DIGEST_BYTES = 16 << 20;
/** Mapped manifests whose stored digest is being checked in the background. */
const digestOwed = new WeakSet<ColumnarManifest>();

/**
 * For a manifest loaded with `map: true`: throws when its file was changed or replaced since it
 * was mapped (its bytes may then have changed under the validated columns), or when its content
 * does not match its stored digest (checked in the background since the load; waits for that
 * verdict). No-op otherwise.
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
  if (digestOwed.delete(manifest)) finishDigestCheck(manifest, m.path);
}

/**
 * Reads, parses and validates a manifest file: binary (manifest_version 3) or JSON (2). Its stored
 * digest is checked unless `verifyDigest: false`: here, or for a mapped manifest in the background
 * until checkManifestFileUnchanged.
 */
export async function loadManifest(
  path: string,
  loadOptions: ManifestLoadOptions = {},
): Promise<ColumnarManifest> {
  const options = { ...loadOptions, verifyDigest: loadOptions.verifyDigest ?? true };
  if (options.map) {
    const mapped = await mapManifest(path);
    if (mapped) {
      // The worker hashes the file while this thread parses and validates it.
      const background = options.verifyDigest && mapped.bytes.length >= BACKGROUND_DIGEST_BYTES;
      const job = background ? startDigestJob(path) : undefined;
      let manifest: ColumnarManifest;
      try {
        manifest = parseManifestBinary(
          mapped.bytes,
          path,
          { ...options, verifyDigest: false },
          options.verifyDigest,
        );
      } catch (err) {
        dropDigestJob(job);
        throw err;
      }
      mappedFiles.set(manifest, mapped.file);
      if (options.verifyDigest && !background) manifest.verifyDigest(path);
      else if (background) {
        digestOwed.add(manifest);
        assignDigestJob(manifest, job);
      }
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
