/**
 * The local record of the last committed manifest, per model: `plan` without `--prev` diffs
 * against it, and the replication side records the next manifest when an update commits.
 * Layout: `<stateDir>/manifests/<model>/committed.manifest` (`_default` when the model has no id),
 * in the binary manifest form, so `plan` without `--prev` loads it as fast as a `--prev` file.
 * Records written before that are `committed.json` (the JSON form): still read, and replaced by
 * the binary record at the next commit.
 *
 * Models without an id share the `_default` record, so a record found for a next manifest is
 * checked to be of the same model before anyone diffs against it (readCommittedManifest given the
 * next manifest): the same model id and, without one, at least half of a sample of next's entry
 * keys present in it (a new version of a model keeps most of its tensor names; another model
 * does not).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Manifest } from '@hotweights/core';
import { HotweightsError, hasErrorCode } from '@hotweights/core';
import { serializeManifestBinary } from './manifest-binary.js';
import { toColumnar } from './manifest-build.js';
import { loadManifest } from './manifest-load.js';
import type { ManifestLoadOptions } from './manifest-validate.js';

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

/**
 * The last committed manifest of a model, or null when none was recorded. Given the next manifest
 * (rather than a model id), the record of next's model, refused with an error naming the record
 * when it is of another model (see the header): a diff against it would be meaningless.
 */
export async function readCommittedManifest(
  stateDir: string,
  model: string | null | Manifest,
  options: ManifestLoadOptions = {},
): Promise<Manifest | null> {
  const next = typeof model === 'object' && model !== null ? model : undefined;
  const modelId = next ? next.model_id : (model as string | null);
  const record = await readCommittedRecord(join(committedManifestPath(stateDir, modelId), '..'), options);
  if (record && next) checkSameModel(record.manifest, record.path, next);
  return record?.manifest ?? null;
}

/** Entry keys of next looked up in a record to tell whether it is of the same model. */
const MODEL_KEY_SAMPLE = 64;

/** Throws when `recorded` (the record at `path`) is of another model than `next`. */
function checkSameModel(recorded: Manifest, path: string, next: Manifest): void {
  const fix =
    'pass --prev with the manifest of the version live for this model, or publish with --model-id ID (one record per model)';
  const nextName = next.model_id === null ? 'no model id' : `model ${JSON.stringify(next.model_id)}`;
  if (recorded.model_id !== next.model_id)
    throw new HotweightsError(
      'HW_STATE',
      `committed record ${path} is of model ${JSON.stringify(recorded.model_id)}, not of the next manifest's (${nextName}): ${fix}`,
      { details: { file: path, recorded: recorded.model_id, next: next.model_id } },
    );
  // An id says which model it is; without one, the entries have to.
  if (next.model_id !== null || next.size === 0 || recorded.size === 0) return;
  const prev = toColumnar(recorded);
  const cur = toColumnar(next);
  const step = Math.max(1, Math.floor(cur.size / MODEL_KEY_SAMPLE));
  let sampled = 0;
  let found = 0;
  for (let i = 0; i < cur.size; i += step) {
    sampled++;
    if (prev.indexOfTensor(cur.columns.tensor.get(i), cur.columns.shard_rank[i] as number) >= 0) found++;
  }
  if (found * 2 < sampled)
    throw new HotweightsError(
      'HW_STATE',
      `committed record ${path} (${recorded.version}) is of another model than the next manifest (${next.version}, ${nextName}): only ${found} of ${sampled} sampled entries of next (e.g. ${JSON.stringify(cur.key(0))}) are in it: ${fix}`,
      { details: { file: path, recorded: recorded.version, next: next.version } },
    );
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
