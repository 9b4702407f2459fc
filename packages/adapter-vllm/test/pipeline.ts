/** One rank's update as `hotweights worker` runs it: stage and verify, prepare, vote, commit. */
import type { Adapter, Manifest, Plan } from '@hotweights/core';
import { loadConfig } from '@hotweights/core';
import { HostStaging, runRankUpdate } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';

const config = loadConfig({});

export async function updateOneRank(adapter: Adapter, plan: Plan, manifest: Manifest, stagingDir: string) {
  const staging = await HostStaging.open({ dir: stagingDir });
  const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
  try {
    return await runRankUpdate({
      plan,
      manifest,
      rank: 0,
      worldSize: 1,
      transport,
      staging,
      adapter,
      config,
      commit: true,
    });
  } finally {
    await transport.close();
    await staging.close();
  }
}
