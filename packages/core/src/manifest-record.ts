/**
 * The local record of the last committed manifest, per model: `plan` without `--prev` diffs
 * against it, and the replication side records the next manifest when an update commits.
 * Layout: `<stateDir>/manifests/<model>/committed.json` (`_default` when the model has no id).
 */
import { randomBytes } from 'node:crypto';
import { mkdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { HotweightsError } from './errors.js';
import type { Manifest } from './manifest.js';
import { loadManifest, serializeManifest } from './manifest-io.js';

const DEFAULT_MODEL_DIR = '_default';

/** Directory name for a model id: readable, and safe as one path segment. */
function modelDir(modelId: string | null): string {
  if (modelId === null || modelId === '') return DEFAULT_MODEL_DIR;
  return encodeURIComponent(modelId).replace(/^\.+/, (dots) => '%2E'.repeat(dots.length));
}

/** Path of the record for a model (exists or not). */
export function committedManifestPath(stateDir: string, modelId: string | null): string {
  return join(stateDir, 'manifests', modelDir(modelId), 'committed.json');
}

/** The last committed manifest of the model, or null when none was recorded. */
export async function readCommittedManifest(
  stateDir: string,
  modelId: string | null,
): Promise<Manifest | null> {
  const path = committedManifestPath(stateDir, modelId);
  try {
    return await loadManifest(path);
  } catch (err) {
    if (err instanceof HotweightsError && err.code === 'HW_NOT_FOUND') {
      const code = (err.cause as NodeJS.ErrnoException | undefined)?.code;
      if (code === 'ENOENT') return null;
    }
    throw err;
  }
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
    await writeFile(tmp, serializeManifest(m));
    await rename(tmp, path);
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
