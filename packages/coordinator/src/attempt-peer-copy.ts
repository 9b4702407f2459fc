/**
 * A rank that arrives after the broadcasts are over copies its share from the staging segments
 * of ranks on its node that hold it (found through who_has and the node-scoped handles), over the
 * segment-handles transport. Every item is verified where it lands. Resolves undefined when some
 * bucket has no usable handle or the copy fails, so the caller reads from the source instead.
 */
import { SegmentHandleTransport } from '@hotweights/transport-local';
import {
  type AttemptContext,
  type AttemptResult,
  consumedBy,
  stageShareFromPeers,
} from './attempt-context.js';
import { ackHandles, findHandles } from './segment-handles.js';

export async function peerCopyAttempt(
  ctx: AttemptContext,
  holders: Readonly<Record<string, number[]>>,
): Promise<AttemptResult | undefined> {
  const { plan, rank } = ctx;
  const consumed = consumedBy(plan, rank);
  const ids = consumed.map((b) => b.bucket_id);
  const scope = { ...ctx, version: plan.version };
  const handles = await findHandles(scope, rank, ids, holders);
  if (!handles) return undefined;
  const from = [...new Set([...handles.values()].map((h) => h.rank))].sort((x, y) => x - y);
  ctx.log(
    `update ${plan.version}: broadcasts are over; copying ${consumed.length} bucket(s) from rank(s) ${from.join(', ')} on this node`,
  );
  // Only this rank's buckets, each "broadcast" from the source by reading a peer's segment.
  try {
    return await stageShareFromPeers(ctx, (world) => new SegmentHandleTransport(rank, world, handles), {
      done: 'copied',
      failed: 'copying',
    });
  } finally {
    await ackHandles(scope, handles, ctx.workerId);
  }
}
