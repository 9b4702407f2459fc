/**
 * The `ucx` transport of a rank that arrives after an update's broadcasts (a restarted worker):
 * it takes no part in broadcasts, it only fetches ranges of buckets from the bucket servers of
 * the ranks that hold them (serve.ts), whose addresses the coordinator's rendezvous still holds.
 */
import {
  type AddressExchange,
  type BroadcastRequest,
  checkBroadcastRequest,
  type FetchRequest,
  type HotweightsConfig,
  type Transport,
  TransportError,
} from '@hotweights/core';
import { parsePosted, serveTable, UCX_ROUND } from '@hotweights/rendezvous';
import { BucketFetcher } from './serve.js';
import type { Ucp } from './ucp.js';
import { UcpWorker, workerOptions } from './worker.js';

export class UcxFetchTransport implements Transport {
  readonly name = 'ucx';
  readonly rank: number;
  readonly worldSize: number;
  readonly #worker: UcpWorker;
  readonly #fetcher: BucketFetcher;

  private constructor(rank: number, worldSize: number, worker: UcpWorker, servers: Uint8Array[]) {
    this.rank = rank;
    this.worldSize = worldSize;
    this.#worker = worker;
    this.#fetcher = new BucketFetcher(worker, servers);
  }

  static async open(
    ucp: Ucp,
    o: { rank: number; worldSize: number; config: HotweightsConfig; exchange: AddressExchange },
  ): Promise<UcxFetchTransport> {
    const worker = UcpWorker.open(ucp, workerOptions(o.config));
    try {
      // This rank's entry replaces its predecessor's; it serves nothing.
      const table = await o.exchange(UCX_ROUND, JSON.stringify({ ucx: '' }));
      return new UcxFetchTransport(o.rank, o.worldSize, worker, serveTable(table.map(parsePosted)));
    } catch (err) {
      await worker.close();
      throw err;
    }
  }

  async broadcast(req: BroadcastRequest): Promise<void> {
    checkBroadcastRequest(req, this.rank, this.worldSize);
    if (req.root === this.rank) return;
    throw new TransportError(
      `bucket ${req.bucketId}: rank ${this.rank} joined after the broadcasts and only fetches`,
    );
  }

  fetch({ bucketId, from, offset, data, signal }: FetchRequest): Promise<void> {
    return this.#fetcher.fetch(bucketId, from, offset ?? 0, data, signal);
  }

  close(): Promise<void> {
    return this.#worker.close();
  }
}
