/**
 * A rank that arrives after the broadcasts, in a fleet met through the coordinator, fetches its
 * share over the update's transport from the ranks that hold it (who_has), each bucket's byte
 * range split across several holders at once, instead of reading the source checkpoint by path.
 * Every item is verified where it lands, as for broadcasts. Resolves undefined when the fleet's
 * transport cannot fetch or a fetch fails, so the caller reads from the source instead.
 */
import type { BroadcastRequest, FetchRequest, Transport } from '@hotweights/core';
import {
  type AttemptContext,
  type AttemptResult,
  consumedBy,
  stageShareFromPeers,
} from './attempt-context.js';

/** Smallest stripe worth a request of its own. */
const MIN_STRIPE_BYTES = 16 * 1024;

export async function fetchAttempt(
  ctx: AttemptContext,
  holders: Readonly<Record<string, number[]>>,
): Promise<AttemptResult | undefined> {
  const { plan, rank, exchange } = ctx;
  const open = ctx.services.openFetchTransport;
  if (!exchange || !open) return undefined;
  const consumed = consumedBy(plan, rank);
  const ids = consumed.map((b) => b.bucket_id);
  const sources = new Map(ids.map((id) => [id, (holders[id] ?? []).filter((r) => r !== rank)] as const));
  if (ids.length === 0 || ids.some((id) => !sources.get(id)?.length)) return undefined;
  let transport: Transport | undefined;
  try {
    const nodes = await exchange('nodes', ctx.nodeId);
    transport = await open({
      plan,
      rendezvous: { mode: 'fetch', ...(ctx.advertiseHost ? { host: ctx.advertiseHost } : {}) },
      nodes,
      exchange,
      log: ctx.log,
    });
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    ctx.log(`update ${plan.version}: cannot fetch from peers (${(err as Error).message})`);
    return undefined;
  }
  if (!transport?.fetch) {
    await transport?.close();
    return undefined;
  }
  const fetch = transport.fetch.bind(transport);
  const from = [...new Set([...sources.values()].flat())].sort((a, b) => a - b);
  ctx.log(
    `update ${plan.version}: broadcasts are over; fetching ${consumed.length} bucket(s) over ${transport.name} from rank(s) ${from.join(', ')}, striped`,
  );
  try {
    return await stageShareFromPeers(ctx, (world) => new StripedFetch(rank, world, fetch, sources), {
      done: 'fetched',
      failed: 'fetching',
    });
  } finally {
    await transport.close();
  }
}

/** "Broadcasts" to this rank by fetching each bucket in stripes, one per holder, all at once. */
class StripedFetch implements Transport {
  readonly name = 'striped-fetch';
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly fetchRange: (request: FetchRequest) => Promise<void>,
    private readonly holders: ReadonlyMap<number, readonly number[]>,
  ) {}

  async broadcast({ bucketId, root, data, signal }: BroadcastRequest): Promise<void> {
    if (root === this.rank) return;
    const from = this.holders.get(bucketId) ?? [];
    const stripes = Math.max(1, Math.min(from.length, Math.floor(data.byteLength / MIN_STRIPE_BYTES)));
    const size = Math.ceil(data.byteLength / stripes);
    await Promise.all(
      Array.from({ length: stripes }, (_, i) => {
        const offset = i * size;
        const part = data.subarray(offset, Math.min(data.byteLength, offset + size));
        // Rotate by bucket so small buckets (one stripe) still spread over the holders.
        const holder = from[(i + bucketId) % from.length] as number;
        return this.fetchRange({ bucketId, from: holder, offset, data: part, ...(signal ? { signal } : {}) });
      }),
    );
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
