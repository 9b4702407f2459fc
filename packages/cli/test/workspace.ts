/**
 * A test file's scratch space for CLI runs: a work folder in the temp dir and a staging folder on
 * /dev/shm (where staging lives in production), both removed after the file's tests, and the env
 * that points the CLI's staging and local state at them.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';

export interface CliWorkspace {
  readonly work: string;
  readonly staging: string;
  readonly env: { readonly HOTWEIGHTS_STAGING_DIR: string; readonly HOTWEIGHTS_STATE_DIR: string };
}

/** Call at the top of a test file; `prefix` names the folders (`hw-cli-<what>-`). */
export function cliWorkspace(prefix: string): CliWorkspace {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const staging = mkdtempSync(join('/dev/shm', prefix));
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(staging, { recursive: true, force: true });
  });
  return {
    work,
    staging,
    env: { HOTWEIGHTS_STAGING_DIR: staging, HOTWEIGHTS_STATE_DIR: join(work, 'state') },
  };
}
