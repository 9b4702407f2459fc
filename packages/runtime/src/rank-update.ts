/**
 * One rank's whole update: replicate (stage + verify) -> adapter.prepare -> commit vote ->
 * adapter.commit, or abort. An adapter with `beginPrepare` prepares while buckets land: each
 * bucket is handed over once verified and its staging reused, so the version is written as it
 * arrives instead of in a second pass. Used by `hotweights replicate` in every rank process (started by the
 * local launcher, mpirun or torchrun). The live version changes only after every rank voted
 * ready; any failure before that leaves it untouched and releases this rank's staging.
 */

import type {
  Adapter,
  AdapterPreparation,
  HotweightsConfig,
  Manifest,
  Plan,
  StagingAgent,
  Transport,
} from '@hotweights/core';
import { CommitError } from '@hotweights/core';
import type { Registry } from 'prom-client';
import { voteOnCommit } from './commit-vote.js';
import { type RankReport, type ReplicationProgress, replicateRank } from './replicator.js';

export interface RankUpdateOptions {
  readonly plan: Plan;
  /** The next version's manifest (adapters that rebuild files need it). */
  readonly manifest?: Manifest;
  readonly rank: number;
  readonly worldSize: number;
  readonly transport: Transport;
  readonly staging: StagingAgent;
  readonly adapter: Adapter;
  readonly config: HotweightsConfig;
  /** Commit after a unanimous vote (false: stage, verify, prepare, then discard). */
  readonly commit: boolean;
  readonly verify?: boolean;
  readonly signal?: AbortSignal;
  readonly metrics?: Registry;
  readonly onProgress?: (p: ReplicationProgress) => void;
}

export interface RankUpdateResult {
  readonly report: RankReport;
  readonly committed: boolean;
  /** Version live on this rank's adapter afterwards. */
  readonly live: string | null;
  /** Seconds the adapter took to make the new version live (the serving pause). */
  readonly commitSeconds: number;
}

export async function runRankUpdate(o: RankUpdateOptions): Promise<RankUpdateResult> {
  const { plan, adapter, staging } = o;
  let prepared = false;
  let preparation: AdapterPreparation | undefined;
  try {
    preparation = await adapter.beginPrepare?.({ plan, ...(o.manifest ? { manifest: o.manifest } : {}) });
    const streaming = preparation;
    const report = await replicateRank({
      plan,
      rank: o.rank,
      worldSize: o.worldSize,
      transport: o.transport,
      staging,
      config: o.config,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.metrics ? { metrics: o.metrics } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      ...(o.verify === undefined ? {} : { verify: o.verify }),
      ...(streaming ? { onBucketReady: (bucket, bytes) => streaming.bucket(bucket, bytes) } : {}),
      ...(streaming?.copyItem
        ? {
            copyItem: (item, source) =>
              (streaming.copyItem as NonNullable<typeof streaming.copyItem>)(item, source),
          }
        : {}),
    });
    if (streaming) await streaming.finish();
    else await adapter.prepare({ plan, staging, ...(o.manifest ? { manifest: o.manifest } : {}) });
    prepared = true;
    if (!o.commit) {
      await adapter.abort(plan.version);
      return { report, committed: false, live: await adapter.currentVersion(), commitSeconds: 0 };
    }
    const vote = await voteOnCommit({
      plan,
      transport: o.transport,
      ready: true,
      timeoutS: o.config.transferTimeoutS,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    if (!vote.ready) {
      throw new CommitError(
        `rank(s) ${vote.refused.join(', ')} were not ready for ${plan.version}; nothing is committed`,
      );
    }
    const t0 = performance.now();
    await adapter.commit(plan.version);
    // Adapters that know their switch time (the directory adapter's rename) report it; the rest
    // of commit (pruning old versions, recording the manifest) happens after the switch.
    const switched = (adapter as { lastSwitchSeconds?: number }).lastSwitchSeconds;
    const commitSeconds = switched ?? (performance.now() - t0) / 1000;
    return { report, committed: true, live: await adapter.currentVersion(), commitSeconds };
  } catch (err) {
    if (preparation && !prepared) await preparation.discard().catch(() => {});
    if (prepared) await adapter.abort(plan.version).catch(() => {});
    throw err;
  } finally {
    await staging.release(plan.version).catch(() => {});
  }
}
