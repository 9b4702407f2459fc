/** Deploys a plan into a directory adapter the way a rank does: replicate, prepare, commit. */
import type { DirectoryAdapter } from '@hotweights/adapter-directory';
import { loadConfig, type Manifest, type Plan } from '@hotweights/core';
import { HostStaging, replicateRank } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';

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
