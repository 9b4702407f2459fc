/**
 * The UCX transport: buckets move as pipelined chain broadcasts over tagged UCX messages (see
 * chain.ts), and a small TCP star (core's rendezvous.ts) carries aborts and lost ranks so that no rank
 * waits on a peer that is gone. Like every transport it does not window, retry or hash: the
 * Replicator does that once for all of them.
 */

import { setTimeout as sleep } from 'node:timers/promises';
import type {
  AddressExchange,
  BroadcastRequest,
  FetchRequest,
  HotweightsConfig,
  Transport,
} from '@hotweights/core';
import { checkBroadcastRequest, TransportError } from '@hotweights/core';
import { ControlChannel, type ControlMessage, type RendezvousAddress } from '@hotweights/rendezvous';
import { ByteBudget } from './budget.js';
import { chainPosition, chunkRanges, MAX_BUCKET_ID, MAX_CHUNKS, MAX_RANKS, TagKind, tagOf } from './chain.js';
import { BucketFetcher, BucketServer } from './serve.js';
import { UCS_ERR_UNREACHABLE, type Ucp } from './ucp.js';
import { type Operation, UcpWorker, UcxStatusError, workerOptions } from './worker.js';

const MIB = 1024 * 1024;
/** How long rank 0 keeps the control star up at close() for ranks that are still working. */
const HUB_LINGER_MS = 5000;
/** Longest wait for every rank at the rendezvous. */
const JOIN_TIMEOUT_MS = 120_000;
/** How long a UCX error waits for the control star to name a lost peer before it is reported. */
const PEER_GRACE_MS = 250;
/** How long a running broadcast may still finish after a rank it needs has left. */
const GONE_GRACE_MS = 500;

interface Active {
  readonly bucketId: number;
  readonly ranks: readonly number[];
  fail(err: Error): void;
}

/** One broadcast's state while it runs. */
class Run {
  readonly ops: Operation[] = [];
  failure: Error | undefined;
  check(): void {
    if (this.failure) throw this.failure;
  }
}

export interface UcxTransportOptions {
  readonly rank: number;
  readonly worldSize: number;
  readonly config: HotweightsConfig;
  /** Rank 0's control socket (with `exchange`: the host it listens on, any port). */
  readonly rendezvous: RendezvousAddress | undefined;
  /** The coordinator's rendezvous: UCX addresses travel through it instead of rank 0's socket. */
  readonly exchange?: AddressExchange | undefined;
}

/**
 * Creates the endpoint to every other rank. A host the kernel still calls unreachable is tried
 * again, as often and as far apart as joining tries rank 0: a link that has just come back leaves
 * a FAILED neighbour entry behind for a few seconds, during which connect() fails at once.
 */
async function connectPeers(
  worker: UcpWorker,
  addresses: readonly Uint8Array[],
  rank: number,
  config: HotweightsConfig,
): Promise<void> {
  for (const [peer, address] of addresses.entries()) {
    if (peer === rank) continue;
    for (let attempt = 0; ; attempt++) {
      try {
        worker.connect(peer, address);
        break;
      } catch (err) {
        if (!(err instanceof UcxStatusError) || err.status !== UCS_ERR_UNREACHABLE) throw err;
        if (attempt >= config.ucxRetries) {
          throw new TransportError(
            `ucx: rank ${rank} could not reach rank ${peer} in ${attempt + 1} attempts: ${err.message}; ` +
              'check the route between their hosts, or allow more time with HOTWEIGHTS_UCX_RETRIES, ' +
              'HOTWEIGHTS_UCX_RETRY_DELAY_MS',
            { code: 'HW_TIMEOUT', cause: err },
          );
        }
        if (attempt === 0) {
          process.stderr.write(
            `hotweights ucx: rank ${rank} cannot reach rank ${peer} yet (${err.message}); ` +
              `trying again every ${config.ucxRetryDelayMs} ms, ${config.ucxRetries} more times\n`,
          );
        }
        await sleep(config.ucxRetryDelayMs);
      }
    }
  }
}

export class UcxTransport implements Transport {
  readonly name = 'ucx';
  readonly rank: number;
  readonly worldSize: number;
  readonly #worker: UcpWorker;
  readonly #channel: ControlChannel;
  readonly #chunkBytes: number;
  readonly #depth: number;
  readonly #budget: ByteBudget;
  readonly #active = new Map<string, Active>();
  /** Per (root, bucket id): how many broadcasts this rank has issued. Keys reused ids apart. */
  readonly #issued = new Map<string, number>();
  /** Aborts that arrived before this rank issued the broadcast they name. */
  readonly #abortedEarly = new Map<string, Error>();
  /** Ranks that left (closed) or were lost, with what to say about it. */
  readonly #gone = new Map<number, string>();
  /** With an exchange: serves this rank's buckets to ranks that come after the broadcasts. */
  readonly #server: { worker: UcpWorker; server: BucketServer; fetcher: BucketFetcher } | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    rank: number,
    worldSize: number,
    worker: UcpWorker,
    channel: ControlChannel,
    config: HotweightsConfig,
    serverWorker?: UcpWorker,
  ) {
    this.#server = serverWorker && {
      worker: serverWorker,
      server: new BucketServer(serverWorker),
      fetcher: new BucketFetcher(serverWorker, channel.serveAddresses),
    };
    this.rank = rank;
    this.worldSize = worldSize;
    this.#worker = worker;
    this.#channel = channel;
    this.#chunkBytes = Math.max(1, Math.round(config.ucxChunkMb * MIB));
    this.#depth = config.ucxConcurrency;
    this.#budget = new ByteBudget(Math.round(config.ucxInflightLimitMb * MIB));
  }

  /** Opens UCX, meets the other ranks and creates an endpoint to each. Every rank calls it. */
  static async open(ucp: Ucp, o: UcxTransportOptions): Promise<UcxTransport> {
    if (o.worldSize > MAX_RANKS) {
      throw new TransportError(`ucx: at most ${MAX_RANKS} ranks are supported, not ${o.worldSize}`, {
        code: 'HW_TRANSPORT_INVALID',
      });
    }
    if (o.worldSize > 1 && !o.rendezvous) {
      throw new TransportError('ucx: a job of several ranks needs MASTER_ADDR and MASTER_PORT', {
        code: 'HW_TRANSPORT_INVALID',
      });
    }
    let worker: UcpWorker;
    try {
      worker = UcpWorker.open(ucp, workerOptions(o.config));
    } catch (err) {
      throw new TransportError(`ucx: rank ${o.rank} could not open UCX: ${(err as Error).message}`, {
        cause: err,
      });
    }
    let channel: ControlChannel | undefined;
    let serverWorker: UcpWorker | undefined;
    try {
      if (o.exchange) serverWorker = UcpWorker.open(ucp, workerOptions(o.config));
      channel = await ControlChannel.join(o.rendezvous ?? { host: '127.0.0.1', port: 0 }, {
        rank: o.rank,
        worldSize: o.worldSize,
        address: worker.address,
        label: 'ucx',
        retryHint: 'HOTWEIGHTS_UCX_RETRIES, HOTWEIGHTS_UCX_RETRY_DELAY_MS',
        retries: o.config.ucxRetries,
        retryDelayMs: o.config.ucxRetryDelayMs,
        // Meeting through the coordinator, every rank was there moments ago: its deadline applies.
        timeoutMs: o.exchange ? o.config.rendezvousTimeoutS * 1000 : JOIN_TIMEOUT_MS,
        ...(o.exchange ? { exchange: o.exchange } : {}),
        ...(serverWorker ? { serveAddress: serverWorker.address } : {}),
      });
      await connectPeers(worker, channel.addresses, o.rank, o.config);
      await channel.started(o.exchange ? o.config.rendezvousTimeoutS * 1000 : JOIN_TIMEOUT_MS);
    } catch (err) {
      await channel?.close(0);
      await worker.close();
      await serverWorker?.close();
      throw err instanceof TransportError
        ? err
        : new TransportError(`ucx: rank ${o.rank} could not join: ${(err as Error).message}`, { cause: err });
    }
    const t = new UcxTransport(o.rank, o.worldSize, worker, channel, o.config, serverWorker);
    channel.listen(
      { onMessage: (m) => t.#onControl(m), onLost: (rank, why) => t.#onGone(rank, lostText(rank, why)) },
      o.config.ucxPeerTimeoutS * 1000,
    );
    return t;
  }

  async broadcast(request: BroadcastRequest): Promise<void> {
    const { bucketId, root, ranks, signal } = request;
    this.#validate(request);
    if (this.#closing) throw new TransportError(`bucket ${bucketId}: the UCX transport is closed`);
    const pair = `${root}:${bucketId}`;
    const seq = this.#issued.get(pair) ?? 0;
    this.#issued.set(pair, seq + 1);
    const key = `${pair}:${seq}`;
    if (signal?.aborted) {
      throw new TransportError(`bucket ${bucketId}: aborted before it started on rank ${this.rank}`, {
        cause: signal.reason,
      });
    }
    if (ranks.length === 1) return;
    for (const peer of ranks) {
      const why = this.#gone.get(peer);
      if (why) throw this.#peerError(bucketId, peer, why);
    }
    const early = this.#abortedEarly.get(key);
    if (early) {
      this.#abortedEarly.delete(key);
      throw early;
    }
    const run = new Run();
    let fail: (err: Error) => void = () => {};
    const failed = new Promise<never>((_, reject) => {
      fail = (err) => {
        if (run.failure) return;
        run.failure = err;
        for (const op of run.ops) op.cancel();
        reject(err);
      };
    });
    const onAbort = () => {
      const reason = signal?.reason instanceof Error ? signal.reason.message : String(signal?.reason);
      fail(
        new TransportError(`bucket ${bucketId}: aborted on rank ${this.rank}: ${reason}`, {
          cause: signal?.reason,
        }),
      );
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    this.#active.set(key, { bucketId, ranks, fail });
    const work = this.#run(run, request, seq);
    work.catch(() => {}); // a failure may win the race; the work's own rejection then has no reader
    try {
      await Promise.race([work, failed]);
    } catch (err) {
      // UCX reports a dead peer too (endpoint timeout, connection reset); the control star usually
      // says which rank went away within moments, and that is the error worth reading.
      if (err instanceof UcxStatusError && !run.failure) {
        await Promise.race([failed.catch(() => {}), sleep(PEER_GRACE_MS)]);
      }
      const gone = err instanceof UcxStatusError ? ranks.find((r) => this.#gone.has(r)) : undefined;
      const error =
        run.failure ??
        (gone !== undefined ? this.#peerError(bucketId, gone, this.#gone.get(gone) as string) : undefined) ??
        (err instanceof TransportError
          ? err
          : new TransportError(`bucket ${bucketId}: rank ${this.rank}: ${(err as Error).message}`, {
              cause: err,
            }));
      fail(error);
      // Tell the other participants, so they stop now rather than at their deadline.
      if (!(error as { remote?: boolean }).remote) {
        this.#channel.abort(key, error.message.replace(/^bucket \d+: /, ''));
      }
      throw error;
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.#active.delete(key);
    }
  }

  #validate(request: BroadcastRequest): void {
    checkBroadcastRequest(request, this.rank, this.worldSize);
    const { bucketId, data } = request;
    const invalid = (why: string) =>
      new TransportError(`bucket ${bucketId}: ${why}`, { code: 'HW_TRANSPORT_INVALID' });
    if (!Number.isInteger(bucketId) || bucketId < 0 || bucketId > MAX_BUCKET_ID) {
      throw invalid(`bucket ids must be integers in 0..${MAX_BUCKET_ID}`);
    }
    if (Math.ceil(data.byteLength / this.#chunkBytes) > MAX_CHUNKS) {
      throw invalid(`${data.byteLength} B is more than ${MAX_CHUNKS} chunks; raise HOTWEIGHTS_UCX_CHUNK_MB`);
    }
  }

  /** This rank's part of the chain: send (root), receive and forward, acknowledge (last). */
  async #run(run: Run, { bucketId, root, ranks, data }: BroadcastRequest, seq: number): Promise<void> {
    const { previous, next, last } = chainPosition(ranks, root, this.rank);
    const chunks = chunkRanges(data.byteLength, this.#chunkBytes);
    const tag = (i: number) => tagOf(TagKind.Data, root, seq, bucketId, i);
    const ack = new Uint8Array(8);
    const ackTag = tagOf(TagKind.Ack, root, seq, bucketId, 0);
    const post = (op: Operation) => {
      run.check();
      run.ops.push(op);
      return op.done;
    };
    const send = async (to: number, i: number, view: Uint8Array) => {
      await this.#budget.acquire(view.byteLength);
      try {
        run.check();
        await post(this.#worker.send(to, view, tag(i), `sending chunk ${i} to rank ${to}`));
      } finally {
        this.#budget.release(view.byteLength);
      }
    };
    if (this.rank === root) {
      const acked = post(this.#worker.recv(ack, ackTag, `waiting for rank ${last}'s acknowledgement`));
      await windowed(chunks.length, this.#depth, (i) => {
        const c = chunks[i] as { start: number; end: number };
        return send(next as number, i, data.subarray(c.start, c.end));
      });
      await acked;
      const landed = Number(new DataView(ack.buffer).getBigUint64(0, true));
      if (landed !== data.byteLength) {
        throw new TransportError(
          `bucket ${bucketId}: rank ${last} holds a buffer of ${landed} B but root ${root} sends ${data.byteLength} B`,
        );
      }
      return;
    }
    const forwards: Promise<void>[] = [];
    await windowed(chunks.length, this.#depth, async (i) => {
      const c = chunks[i] as { start: number; end: number };
      const view = data.subarray(c.start, c.end);
      const what = `receiving chunk ${i} from rank ${previous}`;
      const length = await post(this.#worker.recv(view, tag(i), what)).catch((err: Error) => {
        throw truncated(err)
          ? new TransportError(
              `bucket ${bucketId}: ${what}: rank ${previous} sent more than this rank's ${data.byteLength} B buffer holds`,
            )
          : err;
      });
      if (length !== view.byteLength) {
        throw new TransportError(
          `bucket ${bucketId}: ${what}: ${length} B landed where ${view.byteLength} B were expected (buffers of different sizes?)`,
        );
      }
      if (next !== undefined) {
        const forward = send(next, i, view);
        forward.catch(() => {});
        forwards.push(forward);
      }
    });
    await Promise.all(forwards);
    if (this.rank === last) {
      new DataView(ack.buffer).setBigUint64(0, BigInt(data.byteLength), true);
      await post(this.#worker.send(root, ack, ackTag, `acknowledging to rank ${root}`));
    }
  }

  #onControl(m: ControlMessage): void {
    if (m.t !== 'abort') {
      this.#onGone(m.rank, m.t === 'bye' ? `rank ${m.rank} closed its transport` : lostText(m.rank, m.why));
      return;
    }
    const bucketId = Number(m.key.split(':')[1]);
    const err = Object.assign(
      new TransportError(`bucket ${bucketId}: rank ${m.from} stopped: ${m.reason}`, {
        details: { peer: m.from },
      }),
      { remote: true },
    );
    const active = this.#active.get(m.key);
    if (active) active.fail(err);
    else this.#abortedEarly.set(m.key, err);
  }

  #onGone(rank: number, why: string): void {
    if (rank === this.rank || this.#gone.has(rank)) return;
    this.#gone.set(rank, why);
    // New broadcasts that need the rank fail at once. Running ones get a moment: the rank may have
    // sent its last chunk or acknowledgement just before it left, and the TCP news can overtake
    // the UCX message that this rank has not progressed yet.
    const running = [...this.#active.values()].filter((a) => a.ranks.includes(rank));
    if (running.length === 0) return;
    setTimeout(() => {
      for (const active of running) active.fail(this.#peerError(active.bucketId, rank, why));
    }, GONE_GRACE_MS).unref();
  }

  #peerError(bucketId: number, peer: number, why: string): TransportError {
    return Object.assign(new TransportError(`bucket ${bucketId}: ${why}`, { details: { peer } }), {
      remote: true,
    });
  }

  /** Serves `data` as bucket `bucketId` to ranks that fetch it (a fleet met through the coordinator). */
  serve(bucketId: number, data: Uint8Array): void {
    if (!this.#server) throw new TransportError('ucx: serving needs a fleet met through the coordinator');
    this.#server.server.serve(bucketId, data);
  }

  /** Bytes this rank's bucket server has sent to the ranks that fetched from it. */
  get servedBytes(): number {
    return this.#server?.server.sentBytes ?? 0;
  }

  async fetch({ bucketId, from, offset, data, signal }: FetchRequest): Promise<void> {
    if (!this.#server) throw new TransportError('ucx: fetching needs a fleet met through the coordinator');
    await this.#server.fetcher.fetch(bucketId, from, offset ?? 0, data, signal);
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#server?.server.close();
      await this.#server?.worker.close();
      for (const active of this.#active.values()) {
        active.fail(new TransportError(`bucket ${active.bucketId}: the UCX transport is closed`));
      }
      // Rank 0 keeps its worker up while it lingers for the others; they flush their endpoints
      // to it before they hang up. Then nobody is left to answer its own flushes. The others
      // flush (a last acknowledgement may still be on its way) except to ranks that have left.
      if (this.rank === 0) {
        await this.#channel.close(HUB_LINGER_MS);
        await this.#worker.close(undefined, { gone: () => true });
      } else {
        await this.#worker.close(undefined, { gone: (peer) => this.#gone.has(peer) });
        await this.#channel.close(0);
      }
    })();
    return this.#closing;
  }
}

function lostText(rank: number, why: string | undefined): string {
  return `rank ${rank} was lost (${why ?? 'its process exited or its connection dropped'})`;
}

function truncated(err: Error): boolean {
  return (err as { status?: number }).status === -9; // UCS_ERR_MESSAGE_TRUNCATED
}

/** Runs `task(0..count-1)` in order with at most `depth` running at once; fails on the first error. */
async function windowed(count: number, depth: number, task: (i: number) => Promise<void>): Promise<void> {
  const running = new Set<Promise<void>>();
  for (let i = 0; i < count; i++) {
    const p = task(i).finally(() => running.delete(p));
    p.catch(() => {}); // seen through race/all below; a late failure after the first must not go unhandled
    running.add(p);
    if (running.size >= depth) await Promise.race(running);
  }
  await Promise.all(running);
}
