/**
 * The staging directory a command is about to use: it must exist (a mistyped
 * HOTWEIGHTS_STAGING_DIR is not silently created on some disk), and on a memory filesystem, or
 * every staged byte goes through a disk: that is worth a warning, not a refusal.
 */
import { stat, statfs } from 'node:fs/promises';
import { StagingError } from '@hotweights/core';
import type { CliContext } from './context.js';

/** statfs f_type of the memory filesystems (linux/magic.h): tmpfs, ramfs. */
const MEMORY_FS = new Set([0x01021994, 0x858458f6]);

export async function checkStagingDir(c: CliContext, options: { warn: boolean }): Promise<void> {
  const dir = c.config.stagingDir;
  try {
    await stat(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return; // HostStaging reports the rest
    throw new StagingError(
      `staging dir ${dir} (HOTWEIGHTS_STAGING_DIR) does not exist: create it on a memory filesystem (e.g. mkdir /dev/shm/hotweights), or unset HOTWEIGHTS_STAGING_DIR for /dev/shm`,
      { details: { dir } },
    );
  }
  if (!options.warn) return;
  const fs = await statfs(dir).catch(() => undefined);
  if (fs && !MEMORY_FS.has(Number(fs.type)))
    c.err(
      `hotweights: warning: staging dir ${dir} is not on a memory filesystem (tmpfs): staged buckets go through the disk; set HOTWEIGHTS_STAGING_DIR to a directory under /dev/shm`,
    );
}
