/**
 * The `self` transport: one rank that is both the source and the only consumer of every bucket it
 * takes part in (a world of one, or a rank that reads its share from the checkpoint alone, like a
 * worker that joined after the broadcasts). The bytes are already where they belong, so a
 * broadcast moves nothing; one that names another rank is refused, never silently "done".
 */
import type { BroadcastRequest, Transport, TransportOptions, TransportProvider } from '@hotweights/core';
import { checkBroadcastRequest, TransportError } from '@hotweights/core';
import { abortReason } from './abort-reason.js';

export class SelfTransport implements Transport {
  readonly name = 'self';
  constructor(
    readonly rank: number,
    readonly worldSize: number,
  ) {
    if (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)
      throw new TransportError(`self transport: rank ${rank} is not in 0..${worldSize - 1}`);
  }

  async broadcast(req: BroadcastRequest): Promise<void> {
    if (req.signal?.aborted) throw abortReason(req.signal);
    checkBroadcastRequest(req, this.rank, this.worldSize);
    const others = req.ranks.filter((r) => r !== this.rank);
    if (others.length > 0 || req.root !== this.rank) {
      throw new TransportError(
        `self transport (rank ${this.rank}): bucket ${req.bucketId} from rank ${req.root} to [${req.ranks.join(',')}] needs another rank; use a transport that moves bytes between ranks`,
      );
    }
  }

  async close(): Promise<void> {}
}

/** Registers `self` where a manager is wanted: available only in a world of one. */
export const selfTransportProvider: TransportProvider = {
  name: 'self',
  priority: 0,
  description: 'one rank alone: the source is the only consumer, nothing moves',
  async probe(ctx) {
    return ctx.worldSize === 1
      ? { available: true, detail: 'world of one' }
      : { available: false, reason: `moves nothing between ranks; world size is ${ctx.worldSize}` };
  },
  async create(options: TransportOptions) {
    return new SelfTransport(options.rank, options.worldSize);
  },
};
