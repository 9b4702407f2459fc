/**
 * The local record of the last committed manifest, per model: `plan` without `--prev` diffs
 * against it, and the replication side records the next manifest when an update commits.
 * Layout: `<stateDir>/manifests/<model>/committed.manifest` (`_default` when the model has no id),
 * in the binary manifest form, so `plan` without `--prev` loads it as fast as a `--prev` file.
 * Records written before that are `committed.json` (the JSON form): still read, and replaced by
 * the binary record at the next commit.
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from '@hotweights/core';
import { HotweightsError, hasErrorCode } from '@hotweights/core';
import { serializeManifestBinary } from './manifest-binary.js';
import { loadManifest, type ManifestLoadOptions } from './manifest-io.js';

const DEFAULT_MODEL_DIR = '_default';

/** Record file names in a model's directory, the current one first, then the older JSON one. */
export const COMMITTED_RECORD_FILES = ['committed.manifest', 'committed.json'] as const;

/** Directory name for a model id: readable, and safe as one path segment. */
function modelDir(modelId: string | null): string {
  if (modelId === null || modelId === '') return DEFAULT_MODEL_DIR;
  return encodeURIComponent(modelId).replace(/^\.+/, (dots) => '%2E'.repeat(dots.length));
}

/** Path of the record for a model (exists or not). */
export function committedManifestPath(stateDir: string, modelId: string | null): string {
  return join(stateDir, 'manifests', modelDir(modelId), COMMITTED_RECORD_FILES[0]);
}

/** Loads a record file, or null when it does not exist. */
async function loadRecord(path: string, options: ManifestLoadOptions): Promise<Manifest | null> {
  try {
    return await loadManifest(path, options);
  } catch (err) {
    if (hasErrorCode(err, 'HW_NOT_FOUND')) {
      const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
      if (code === 'ENOENT') return null;
    }
    throw err;
  }
}

/**
 * The record in a model's directory (`<stateDir>/manifests/<model>`): the binary one, else an
 * older JSON one; null when there is none.
 */
export async function readCommittedRecord(
  modelDirPath: string,
  options: ManifestLoadOptions = {},
): Promise<{ manifest: Manifest; path: string } | null> {
  for (const name of COMMITTED_RECORD_FILES) {
    const path = join(modelDirPath, name);
    const manifest = await loadRecord(path, options);
    if (manifest) return { manifest, path };
  }
  return null;
}

/** The last committed manifest of the model, or null when none was recorded. */
export async function readCommittedManifest(
  stateDir: string,
  modelId: string | null,
  options: ManifestLoadOptions = {},
): Promise<Manifest | null> {
  const record = await readCommittedRecord(join(committedManifestPath(stateDir, modelId), '..'), options);
  return record?.manifest ?? null;
}

/**
 * Records a manifest (a path, which is loaded and validated first, or a Manifest) as the model's
 * committed version. Atomic: a reader sees the old record or the new one, never a partial file.
 * Returns the record's path.
 */
export async function recordCommittedManifest(
  stateDir: string,
  manifest: string | Manifest,
): Promise<string> {
  const m = typeof manifest === 'string' ? await loadManifest(manifest) : manifest;
  const path = committedManifestPath(stateDir, m.model_id);
  await mkdir(join(path, '..'), { recursive: true });
  const tmp = `${path}.${process.pid}.${randomBytes(4).toString('hex')}.tmp`;
  try {
    await writeFile(tmp, serializeManifestBinary(m));
    await rename(tmp, path);
    // An older JSON record is now stale (the binary one is read first): remove it.
    for (const name of COMMITTED_RECORD_FILES.slice(1)) await rm(join(path, '..', name), { force: true });
  } catch (err) {
    await rm(tmp, { force: true });
    throw new HotweightsError(
      'HW_STATE',
      `cannot record committed manifest in ${path}: ${(err as Error).message}`,
      {
        cause: err,
      },
    );
  }
  return path;
}
