/**
 * The MPI transport: one bucket = one broadcast (pipelined in chunks) over a communicator made
 * of exactly the bucket's participants, so ranks outside them never receive it. Broadcasts are
 * handed to the addon's ordered MPI thread in call order; the Replicator issues buckets in the
 * same order on every participant, which keeps the collectives matched with several in flight.
 */
import {
  type BroadcastRequest,
  checkBroadcastRequest,
  checkParticipants,
  type HotweightsConfig,
  isErrorKind,
  signalReason,
  TimeoutError,
  type Transport,
  TransportError,
  type TransportOptions,
} from '@hotweights/core';
import type { MpiSession } from './session.js';

const MIB = 1024 * 1024;

export class MpiTransport implements Transport {
  readonly name = 'mpi';
  readonly rank: number;
  readonly worldSize: number;
  readonly #session: MpiSession;
  readonly #chunkBytes: number;
  readonly #timeoutMs: number;
  /** Participant set ("0,2") -> communicator made for it, with its creation promise. */
  readonly #comms = new Map<string, { id: number; done: Promise<void> }>();
  readonly #inflight = new Set<Promise<unknown>>();
  #closed = false;

  constructor(session: MpiSession, options: TransportOptions) {
    this.#session = session;
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.#chunkBytes = chunkBytes(options.config);
    this.#timeoutMs = options.config.transferTimeoutS * 1000;
  }

  /** Bytes per MPI_Bcast call (0 = whole bucket, split only at 1 GiB). */
  get chunkBytes(): number {
    return this.#chunkBytes;
  }

  async prepare(groups: readonly (readonly number[])[]): Promise<void> {
    this.#usable('prepare');
    const byKey = new Map<string, readonly number[]>();
    for (const g of groups) {
      checkParticipants(g, this.worldSize, 'prepare');
      byKey.set(g.join(','), g);
    }
    // Sorted so every rank creates the communicators in the same order whatever order it got.
    const keys = [...byKey.keys()].sort();
    const created: Promise<void>[] = [];
    for (const key of keys) {
      const g = byKey.get(key) as readonly number[];
      if (g.length >= 2 && g.includes(this.rank)) created.push(this.#comm(g).done);
    }
    await this.#deadline(Promise.all(created), undefined, `creating ${created.length} communicator(s)`);
  }

  async broadcast(request: BroadcastRequest): Promise<void> {
    const { bucketId, root, ranks, data, signal } = request;
    this.#usable(`bucket ${bucketId}`);
    if (signal?.aborted) throw signalReason(signal);
    const what = `bucket ${bucketId}`;
    checkBroadcastRequest(request, this.rank, this.worldSize);
    if (data.byteLength === 0 || ranks.length === 1) return;
    const comm = this.#comm(ranks);
    const sent = this.#session.native.bcast(comm.id, ranks.indexOf(root), data, this.#chunkBytes);
    // The communicator's creation error explains a failed broadcast better than the broadcast's.
    const work = comm.done.then(() => sent);
    sent.catch(() => {});
    this.#inflight.add(work);
    try {
      await this.#deadline(work, signal, `${what} (${data.byteLength} B from rank ${root} to [${ranks}])`);
    } finally {
      this.#inflight.delete(work);
    }
  }

  /**
   * MPI_Barrier over `ranks` (default: the whole world), in order with the broadcasts. Not part
   * of the Transport contract; benchmarks use it to time broadcasts the way a C program would.
   */
  async barrier(
    ranks: readonly number[] = Array.from({ length: this.worldSize }, (_, i) => i),
  ): Promise<void> {
    this.#usable('barrier');
    checkParticipants(ranks, this.worldSize, 'barrier');
    if (ranks.length < 2) return;
    const comm = this.#comm(ranks);
    const done = this.#session.native.barrier(comm.id);
    done.catch(() => {});
    await this.#deadline(
      comm.done.then(() => done),
      undefined,
      `barrier over [${ranks}]`,
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#session.broken) return; // an abandoned collective: freeing could wait forever
    await Promise.allSettled([...this.#inflight]);
    const frees = [...this.#comms.values()].map((c) =>
      c.done.then(
        () => this.#session.native.freeComm(c.id),
        () => undefined,
      ),
    );
    this.#comms.clear();
    await Promise.allSettled(frees);
  }

  #usable(what: string): void {
    if (this.#closed) throw new TransportError(`${what}: the MPI transport is closed`);
    const broken = this.#session.broken;
    if (broken) {
      throw new TransportError(
        `${what}: the MPI transport is unusable after an earlier failure: ${broken.message}`,
        {
          cause: broken,
        },
      );
    }
  }

  #comm(ranks: readonly number[]): { id: number; done: Promise<void> } {
    const key = ranks.join(',');
    let comm = this.#comms.get(key);
    if (!comm) {
      comm = this.#session.native.createComm(ranks);
      comm.done.catch(() => {});
      this.#comms.set(key, comm);
    }
    return comm;
  }

  /**
   * Waits for `work` until the transfer deadline or the signal. Giving up on a collective that
   * was issued breaks the session (see MpiSession.markBroken).
   */
  async #deadline(work: Promise<unknown>, signal: AbortSignal | undefined, what: string): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new TimeoutError(
            `MPI: ${what} did not finish within ${this.#timeoutMs / 1000} s on rank ${this.rank}: a peer rank is dead or stuck; the MPI job will be aborted`,
            { details: { rank: this.rank, timeoutMs: this.#timeoutMs } },
          ),
        );
      }, this.#timeoutMs);
      if (signal) {
        onAbort = () => reject(signalReason(signal));
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    try {
      await Promise.race([work, giveUp]);
    } catch (err) {
      if ((err as { sizeMismatch?: boolean }).sizeMismatch) {
        // Every participant compared the sizes (one MPI_Allgather) before any byte moved, and all
        // refused together: the collectives are still matched, so the session stays usable.
        throw new TransportError(
          `MPI: ${what} refused on rank ${this.rank}: ${(err as Error).message}; every participant must pass a buffer of the bucket's size`,
          { code: 'HW_TRANSPORT_INVALID', cause: err },
        );
      }
      const failure =
        isErrorKind(err, 'TimeoutError') || err === (signal?.reason as unknown) || signal?.aborted
          ? (err as Error)
          : new TransportError(`MPI: ${what} failed on rank ${this.rank}: ${(err as Error).message}`, {
              cause: err,
            });
      // A collective this rank stopped waiting for (or that failed) leaves peers mismatched.
      this.#session.markBroken(failure);
      throw failure;
    } finally {
      clearTimeout(timer);
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
    }
  }
}

export function chunkBytes(config: HotweightsConfig): number {
  return Math.round(config.mpiChunkMb * MIB);
}
