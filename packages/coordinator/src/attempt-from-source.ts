/**
 * A rank that arrives after the broadcasts are over, with no peer on its node to copy from, reads
 * its share from the source checkpoint itself: it is source and only consumer of a plan of its
 * own buckets, so nothing moves between ranks and, when the adapter can, every item lands
 * straight in the adapter's version (verified there).
 */
import { stageUpdate } from '@hotweights/runtime';
import { SelfTransport } from '@hotweights/transport-local';
import { type AttemptContext, type AttemptResult, consumedBy, pipelineOptions } from './attempt-context.js';

export async function fromSourceAttempt(ctx: AttemptContext): Promise<AttemptResult> {
  const { plan, rank } = ctx;
  const consumed = consumedBy(plan, rank);
  ctx.log(
    `update ${plan.version}: broadcasts are over; reading ${consumed.length} bucket(s) from the source`,
  );
  const world = rank + 1;
  const route = {
    plan: {
      ...plan,
      world_size: world,
      source: { ...plan.source, rank },
      buckets: consumed.map((b) => ({ ...b, consumer_ranks: [rank] })),
    },
    worldSize: world,
  };
  const staged = await stageUpdate({
    ...pipelineOptions(ctx),
    route,
    transport: new SelfTransport(rank, world),
  });
  return { staged, have: consumed.map((b) => b.bucket_id) };
}
