/** writeManifest: the manifest's on-disk form (core's format), written atomically. */
import { type Manifest, serializeManifest } from '@hotweights/core';
import { refuseInsideCheckpoint, writeAtomically } from './atomic-write.js';

export interface WriteManifestOptions {
  /**
   * The published checkpoint (default: the manifest's checkpoint_root): writing inside it is
   * refused unless `allowInsideCheckpoint`.
   */
  readonly checkpoint?: string;
  readonly allowInsideCheckpoint?: boolean;
}

export async function writeManifest(
  manifest: Manifest,
  path: string,
  options: WriteManifestOptions = {},
): Promise<void> {
  const checkpoint = options.checkpoint ?? manifest.checkpoint_root ?? undefined;
  await refuseInsideCheckpoint(path, checkpoint, options.allowInsideCheckpoint);
  await writeAtomically(path, [serializeManifest(manifest)]);
}
