/**
 * The commit vote: after staging, verifying and preparing, every rank tells every other rank
 * whether it is ready, over the same transport that moved the bytes (one 1-byte broadcast from
 * each rank, in rank order). An update commits only when every rank said yes; a rank that crashed
 * or failed never votes, its peers' broadcasts fail or time out, and nobody commits. This works
 * the same under the local launcher, mpirun and torchrun.
 */

import type { Plan, Transport } from '@hotweights/core';
import { CommitError } from '@hotweights/core';

const READY = 1;

export interface VoteResult {
  readonly ready: boolean;
  /** Ranks that voted no (a rank that never voted makes the vote fail with an error instead). */
  readonly refused: readonly number[];
}

/** Bucket ids above every bucket of the plan, one per voting rank. */
export function voteBucketId(plan: Plan, rank: number): number {
  const max = plan.buckets.reduce((m, b) => Math.max(m, b.bucket_id), -1);
  return max + 1 + rank;
}

/**
 * Every rank calls this with its own readiness. Resolves with everyone's votes, or rejects with a
 * CommitError naming the first rank whose vote never arrived (crashed, killed or timed out).
 */
export async function voteOnCommit(options: {
  readonly plan: Plan;
  readonly transport: Transport;
  readonly ready: boolean;
  readonly timeoutS: number;
  readonly signal?: AbortSignal;
}): Promise<VoteResult> {
  const { plan, transport, ready } = options;
  const all = Array.from({ length: transport.worldSize }, (_, r) => r);
  const refused: number[] = [];
  for (const r of all) {
    const data = new Uint8Array([r === transport.rank ? (ready ? READY : 0) : 0]);
    const timeout = AbortSignal.timeout(options.timeoutS * 1000);
    const signal = options.signal ? AbortSignal.any([options.signal, timeout]) : timeout;
    try {
      await transport.broadcast({ bucketId: voteBucketId(plan, r), root: r, ranks: all, data, signal });
    } catch (err) {
      throw new CommitError(
        `rank ${transport.rank}: no commit vote from rank ${r} for ${plan.version} (${(err as Error).message}); nothing is committed`,
        { cause: err, details: { rank: r } },
      );
    }
    if (data[0] !== READY) refused.push(r);
  }
  return { ready: refused.length === 0, refused };
}
