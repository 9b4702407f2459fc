/** Deploys a plan into a directory adapter the way a rank does: replicate, prepare, commit. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { DirectoryAdapter } from '@hotweights/adapter-directory';
import { loadConfig, type Manifest, type Plan } from '@hotweights/core';
import { HostStaging, replicateRank } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll } from 'vitest';

const config = loadConfig({});

/** Stages every bucket of `plan` under `shm` (one local rank), prepares it and commits it. */
export async function deploy(shm: string, adapter: DirectoryAdapter, plan: Plan, manifest: Manifest) {
  const staging = await HostStaging.open({ dir: shm });
  const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
  try {
    await replicateRank({ plan, rank: 0, worldSize: 1, transport, staging, config });
    await adapter.prepare({ plan, manifest, staging });
    await adapter.commit(plan.version);
  } finally {
    await transport.close();
    await staging.close();
  }
}

/**
 * A test file's scratch space: a work folder in the temp dir and a staging folder on /dev/shm,
 * both removed after the file's tests, and `deploy` staging there. Call at the top of the file.
 */
export function deployScratch(prefix: string): {
  readonly work: string;
  readonly shm: string;
  deploy(adapter: DirectoryAdapter, plan: Plan, manifest: Manifest): Promise<void>;
} {
  const work = mkdtempSync(join(tmpdir(), prefix));
  const shm = mkdtempSync(join('/dev/shm', prefix));
  afterAll(() => {
    rmSync(work, { recursive: true, force: true });
    rmSync(shm, { recursive: true, force: true });
  });
  return { work, shm, deploy: (adapter, plan, manifest) => deploy(shm, adapter, plan, manifest) };
}
