/**
 * writeManifest: the manifest's on-disk form, written atomically. Binary (manifest_version 3) by
 * default, the fast form to load; `json` writes the readable manifest_version 2. Loaders accept both.
 */

import type { Manifest } from '@hotweights/core';
import { encodeManifestBinary, serializeManifest } from '@hotweights/manifest';
import { refuseInsideCheckpoint, writeAtomically } from './atomic-write.js';

export const MANIFEST_FORMATS = ['binary', 'json'] as const;
export type ManifestFormat = (typeof MANIFEST_FORMATS)[number];

export interface WriteManifestOptions {
  /**
   * The published checkpoint (default: the manifest's checkpoint_root): writing inside it is
   * refused unless `allowInsideCheckpoint`.
   */
  readonly checkpoint?: string;
  readonly allowInsideCheckpoint?: boolean;
  /** `binary` (default) or `json`. */
  readonly format?: ManifestFormat;
}

export async function writeManifest(
  manifest: Manifest,
  path: string,
  options: WriteManifestOptions = {},
): Promise<void> {
  const checkpoint = options.checkpoint ?? manifest.checkpoint_root ?? undefined;
  await refuseInsideCheckpoint(path, checkpoint, options.allowInsideCheckpoint);
  const format = options.format ?? 'binary';
  await writeAtomically(
    path,
    format === 'json' ? [serializeManifest(manifest)] : encodeManifestBinary(manifest),
  );
}
