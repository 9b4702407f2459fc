/**
 * The one update pipeline, for every caller (the one-host launcher's ranks, the worker agent, the
 * demo): `stageUpdate` gets this rank's share of a plan (replicated into staging, or landed
 * straight in the adapter's version where the adapter can copy items and this rank alone needs
 * them), verifies every item, and prepares the adapter (streaming, bucket by bucket as they
 * verify, when the adapter offers `beginPrepare`). It resolves with a `StagedUpdate`: the version
 * is ready to flip, nothing live has changed. Then the caller decides, after its own agreement
 * (the launcher's commit vote, the coordinator's quorum), to `commit()` or `discard()`.
 *
 * Any failure before the StagedUpdate exists discards whatever was prepared and releases staging,
 * so the live version and the previous one stay intact.
 */

import type {
  Adapter,
  AdapterPreparation,
  HotweightsConfig,
  Manifest,
  Plan,
  PlanBucket,
  StagingAgent,
  Transport,
} from '@hotweights/core';
import { CommitError, HotweightsError } from '@hotweights/core';
import type { Registry } from 'prom-client';
import { PatchLanding, planHasPatches } from './patch-landing.js';
import { checkPlanWorld } from './plan-world.js';
import { type RankReport, type ReplicationProgress, replicateRank } from './replicator.js';

/**
 * How this rank's bytes arrive when not through the plan's own broadcasts (a rank that joins after
 * them copies its share from a peer or reads it from the source): the plan the Replicator runs and
 * its world. The adapter still prepares the update's plan.
 */
export interface UpdateRoute {
  readonly plan: Plan;
  readonly worldSize: number;
}

export interface StageUpdateOptions {
  /** The update: what the adapter prepares and what the rank's world was planned for. */
  readonly plan: Plan;
  /** The next version's manifest (adapters that rebuild files need it). */
  readonly manifest?: Manifest | undefined;
  readonly rank: number;
  readonly worldSize: number;
  /** An open transport of this rank for `route` (default: the plan in this world). */
  readonly transport: Transport;
  readonly route?: UpdateRoute | undefined;
  readonly staging: StagingAgent;
  readonly adapter: Adapter;
  readonly config: HotweightsConfig;
  /** Check every landed item's hash (default true). */
  readonly verify?: boolean | undefined;
  /**
   * Keep every staged bucket until commit or discard even when the adapter took it while
   * streaming (peers on this host may copy the segments); default: drop each once handed over.
   */
  readonly keepStaged?: boolean | undefined;
  readonly signal?: AbortSignal | undefined;
  readonly metrics?: Registry | undefined;
  readonly onProgress?: ((p: ReplicationProgress) => void) | undefined;
  /** Where the plan came from, for the world-mismatch message (e.g. the plan file). */
  readonly planSource?: string | undefined;
}

export interface CommitResult {
  /** Version live on this rank's adapter afterwards. */
  readonly live: string | null;
  /** Seconds the adapter took to make the new version live (the serving pause). */
  readonly commitSeconds: number;
}

/** A version staged, verified and prepared on this rank, waiting for the decision. */
export interface StagedUpdate {
  readonly version: string;
  readonly report: RankReport;
  /** Buckets of the plan this rank consumes, every item landed and verified (the precommit's share). */
  readonly buckets: readonly PlanBucket[];
  /** How the adapter prepared: streaming buckets, landing items directly, or from full staging. */
  readonly prepared: 'streaming' | 'direct' | 'staged';
  /** Makes the version live on this rank's adapter and frees its staging. */
  commit(): Promise<CommitResult>;
  /** Drops the prepared version and its staging; live is untouched. Safe to call twice. */
  discard(): Promise<void>;
}

/** Stages, verifies and prepares one update on this rank (see the file comment). */
export async function stageUpdate(o: StageUpdateOptions): Promise<StagedUpdate> {
  const { plan, adapter, staging } = o;
  checkPlanWorld(plan, {
    rank: o.rank,
    worldSize: o.worldSize,
    ...(o.planSource ? { source: o.planSource } : {}),
  });
  const route = o.route ?? { plan, worldSize: o.worldSize };
  const manifest = o.manifest ? { manifest: o.manifest } : {};
  let preparation: AdapterPreparation | undefined;
  let prepared = false;
  try {
    // Patch items are rebuilt into whole tensors from the live version before any adapter sees them.
    const patches = planHasPatches(plan) ? new PatchLanding(plan, adapter, o.rank) : undefined;
    preparation = await adapter.beginPrepare?.({ plan, ...manifest });
    const streaming = preparation;
    // A patch item's whole tensor is on the source's disk, but the patch must be applied to the
    // live version and checked, so patch plans never take the direct-copy path.
    const copyItem = patches ? undefined : streaming?.copyItem?.bind(streaming);
    let direct = false;
    const report = await replicateRank({
      plan: route.plan,
      rank: o.rank,
      worldSize: route.worldSize,
      transport: o.transport,
      staging,
      config: o.config,
      ...(o.signal ? { signal: o.signal } : {}),
      ...(o.metrics ? { metrics: o.metrics } : {}),
      ...(o.onProgress ? { onProgress: o.onProgress } : {}),
      ...(o.verify === undefined ? {} : { verify: o.verify }),
      ...(o.keepStaged ? { keepStaged: true } : {}),
      ...(streaming
        ? {
            onBucketReady: async (bucket, bytes, device) => {
              if (!patches) return streaming.bucket(bucket, bytes, device);
              // A patched bucket reaches the adapter rebuilt, from host memory, in parts as its
              // tensors are rebuilt (the adapter writes one part while the next is rebuilt).
              await patches.expand(bucket, bytes, (part, rebuilt) => streaming.bucket(part, rebuilt));
            },
          }
        : {}),
      ...(copyItem
        ? {
            copyItem: (item, source) => {
              direct = true;
              return copyItem(item, source);
            },
          }
        : {}),
    });
    // Stopped while the last buckets landed: drop the half-built version instead of finishing it.
    throwIfStopped(o);
    if (streaming) await streaming.finish();
    else if (patches)
      await adapter.prepare({ ...(await patches.expandStaged(staging, o.rank)), ...manifest });
    else await adapter.prepare({ plan, staging, ...manifest });
    prepared = true;
    // Stopped while it finished (which is not interruptible): the prepared version goes at once,
    // before the caller's vote or quorum, so a stop leaves nothing of it behind.
    throwIfStopped(o);
    return new Staged(o, report, streaming ? (direct ? 'direct' : 'streaming') : 'staged');
  } catch (err) {
    if (preparation && !prepared) await preparation.discard().catch(() => {});
    if (prepared) await adapter.abort(plan.version).catch(() => {});
    await staging.release(plan.version).catch(() => {});
    throw err;
  }
}

/** Throws the replicator's HW_ABORTED error when the caller's signal fired. */
function throwIfStopped(o: StageUpdateOptions): void {
  if (!o.signal?.aborted) return;
  const why = o.signal.reason instanceof Error ? o.signal.reason.message : String(o.signal.reason);
  throw new HotweightsError('HW_ABORTED', `rank ${o.rank}: update ${o.plan.version} aborted: ${why}`, {
    cause: o.signal.reason,
  });
}

class Staged implements StagedUpdate {
  readonly version: string;
  readonly buckets: readonly PlanBucket[];
  #state: 'staged' | 'committed' | 'discarded' = 'staged';

  constructor(
    private readonly o: StageUpdateOptions,
    readonly report: RankReport,
    readonly prepared: StagedUpdate['prepared'],
  ) {
    this.version = o.plan.version;
    this.buckets = o.plan.buckets.filter((b) => b.consumer_ranks.includes(o.rank));
  }

  async commit(): Promise<CommitResult> {
    if (this.#state !== 'staged') throw new CommitError(`update ${this.version} is already ${this.#state}`);
    const { adapter } = this.o;
    const t0 = performance.now();
    try {
      await adapter.commit(this.version);
      this.#state = 'committed';
    } finally {
      // Committed or not, the adapter holds the version now; a failed commit can still discard.
      await this.o.staging.release(this.version).catch(() => {});
    }
    // Adapters that know their switch time (the directory adapter's rename) report it; the rest
    // of commit (pruning old versions, recording the manifest) happens after the switch.
    const switched = (adapter as { lastSwitchSeconds?: number }).lastSwitchSeconds;
    return {
      live: await adapter.currentVersion(),
      commitSeconds: switched ?? (performance.now() - t0) / 1000,
    };
  }

  async discard(): Promise<void> {
    if (this.#state !== 'staged') return;
    this.#state = 'discarded';
    try {
      await this.o.adapter.abort(this.version);
    } finally {
      await this.o.staging.release(this.version).catch(() => {});
    }
  }
}
