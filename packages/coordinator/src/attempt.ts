/**
 * How a worker's attempt at an update gets, verifies and prepares its bytes. Every strategy runs
 * the runtime's one update pipeline (`stageUpdate`: replicate or land directly, verify, prepare
 * the adapter, streaming where it can); they differ only in where the bytes come from:
 *
 * - broadcast (attempt-broadcast.ts): the plan's own broadcasts, with every rank of the world;
 * - peer copy (attempt-peer-copy.ts): a rank that arrives after the broadcasts are over copies
 *   its share from the staging segments of ranks on its node that hold it;
 * - fetch (attempt-fetch.ts): else, in a fleet met through the coordinator, it fetches its share
 *   over the fleet's transport (ucx) from the ranks that hold it, striped across them;
 * - from source (attempt-from-source.ts): failing that, it reads its share from the checkpoint.
 *
 * The agent (worker.ts) owns the lifecycle around it: when to start, precommit, flip or discard.
 */
import { broadcastAttempt } from './attempt-broadcast.js';
import type { AttemptContext, AttemptResult } from './attempt-context.js';
import { fetchAttempt } from './attempt-fetch.js';
import { fromSourceAttempt } from './attempt-from-source.js';
import { peerCopyAttempt } from './attempt-peer-copy.js';

export type { AttemptContext, AttemptResult, AttemptServices } from './attempt-context.js';

/** Chooses how this rank gets its share and stages it. */
export async function stageAttempt(ctx: AttemptContext): Promise<AttemptResult> {
  const { plan, rank } = ctx;
  const ids = plan.buckets.map((b) => b.bucket_id);
  const source = plan.source.rank;
  // The source reports every bucket once it has sent them all: after that, nobody will take part
  // in a broadcast again, and a rank arriving now gets its share another way.
  const holders = ids.length ? (await ctx.client.whoHas(plan.version, ids)).holders : {};
  const broadcastsOver =
    rank !== source && ids.length > 0 && ids.every((id) => holders[id]?.includes(source));
  if (!broadcastsOver) return broadcastAttempt(ctx);
  return (
    (await peerCopyAttempt(ctx, holders)) ?? (await fetchAttempt(ctx, holders)) ?? fromSourceAttempt(ctx)
  );
}
