/**
 * One rank's whole part in a multi-process compliance job, as the transport packages' test
 * fixtures run it: the probe, the provider contract (its create/close round trip is a job of its
 * own, so every rank takes part), the rank compliance suite, the words each bad request of
 * `badRequests` is refused with, and a broadcast after close.
 */
import type { TransportProvider } from '@hotweights/core';
import { loadConfig, readLaunchContext } from '@hotweights/core';
import { badRequests, checkProviderContract, runRankCompliance } from './transport.js';

export interface RankJobReport {
  readonly rank: number;
  readonly size: number;
  readonly probe: unknown;
  /** How many provider-contract checks passed. */
  readonly contract: number;
  readonly failures: readonly unknown[];
  readonly passed: readonly string[];
  /** `CODE: message` of each refused bad request, then the message of the broadcast after close. */
  readonly refused: readonly string[];
}

export async function runComplianceRank(provider: TransportProvider): Promise<RankJobReport> {
  const config = loadConfig();
  const launch = readLaunchContext();
  const options = { rank: launch.rank, worldSize: launch.worldSize, config };
  const ctx = { ...options, launcher: launch.launcher };
  const probe = await provider.probe(ctx);
  const contract = await checkProviderContract(provider, ctx, options);
  const transport = await provider.create(options);
  const report = await runRankCompliance(transport);
  const refused: string[] = [];
  const all = Array.from({ length: launch.worldSize }, (_, i) => i);
  for (const { request } of badRequests(launch.worldSize)) {
    await transport.broadcast(request).catch((err: { code?: string; message: string }) => {
      refused.push(`${err.code}: ${err.message}`);
    });
  }
  await transport.close();
  await transport
    .broadcast({ bucketId: 4, root: 0, ranks: all, data: new Uint8Array(4) })
    .catch((err: Error) => {
      refused.push(err.message);
    });
  return {
    rank: launch.rank,
    size: launch.worldSize,
    probe,
    contract: contract.passed.length,
    failures: [...contract.failures, ...report.failures],
    passed: report.passed,
    refused,
  };
}
