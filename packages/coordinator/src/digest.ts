/**
 * The precommit digest: what a rank staged, as the coordinator can recompute it from the plan.
 * A worker digests the buckets it actually staged and verified; the coordinator digests the buckets
 * the plan assigns to that rank. Equal digests mean the rank holds exactly its share of the update.
 */
import { createHash } from 'node:crypto';
import type { Plan, PlanBucket } from '@hotweights/core';
import { canonicalJson } from '@hotweights/manifest';

export function stagedDigest(version: string, buckets: readonly PlanBucket[]): string {
  const parts = [...buckets]
    .sort((a, b) => a.bucket_id - b.bucket_id)
    .map((b) => [b.bucket_id, b.size, b.items.map((it) => [it.key, it.hash, it.offset, it.nbytes])]);
  return `sha256:${createHash('sha256')
    .update(canonicalJson({ version, buckets: parts }))
    .digest('hex')}`;
}

/** Buckets of `plan` that `rank` consumes. */
export function bucketsForRank(plan: Plan, rank: number): PlanBucket[] {
  return plan.buckets.filter((b) => b.consumer_ranks.includes(rank));
}

export function expectedDigest(plan: Plan, rank: number): string {
  return stagedDigest(plan.version, bucketsForRank(plan, rank));
}

/**
 * Ranks whose precommit a commit needs: every consumer of a bucket, plus every rank of the plan's
 * world (each must flip its adapter), or the registered ranks when the plan names neither.
 */
export function requiredRanks(plan: Plan, registeredRanks: readonly number[]): number[] {
  const ranks = new Set<number>();
  for (const b of plan.buckets) for (const r of b.consumer_ranks) ranks.add(r);
  if (plan.world_size !== null) for (let r = 0; r < plan.world_size; r++) ranks.add(r);
  if (ranks.size === 0) for (const r of registeredRanks) ranks.add(r);
  return [...ranks].sort((a, b) => a - b);
}

/**
 * The precommit digest of a fleet rollback to `version` from `from`: a rank votes yes once it can
 * make `version` live again (it kept it, or fetched it anew). No buckets move, so nothing else to
 * digest; the vote counts only from the worker holding the rank.
 */
export function rollbackDigest(version: string, from: string | null): string {
  return `sha256:${createHash('sha256')
    .update(canonicalJson({ rollback_to: version, from }))
    .digest('hex')}`;
}
