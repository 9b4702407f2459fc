/**
 * The NCCL transport: one bucket = one ncclBroadcast per chunk, staged host -> device -> host by
 * the addon's engine thread (two device slots, copies overlapping the broadcast), over a
 * communicator of exactly the bucket's participants. Rank 0's NCCL unique id travels through the
 * torchrun-style rendezvous (MASTER_ADDR/MASTER_PORT), whose control star stays up to spread
 * aborts and lost ranks. A collective cannot be cancelled: when one outlives the deadline, a
 * signal aborts it, a peer aborts or a peer's process goes away, the transport calls
 * ncclCommAbort on its communicators, fails with what happened, and stays unusable (as MPI does).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BroadcastRequest,
  checkBroadcastRequest,
  checkParticipants,
  type HotweightsConfig,
  isErrorKind,
  readLaunchContext,
  signalReason,
  TimeoutError,
  type Transport,
  TransportError,
  type TransportOptions,
} from '@hotweights/core';
import { ControlChannel, type ControlMessage, type RendezvousAddress } from '@hotweights/rendezvous';
import type { NativeNccl } from './native.js';

const MIB = 1024 * 1024;
const RETRY_DELAY_MS = 250;
/** Longest wait for every rank to join (processes of one job may start far apart). */
const JOIN_TIMEOUT_MS = 120_000;
/** How long a failed rank listens for a peer's explanation before reporting its own symptom. */
const EXPLAIN_MS = 500;
/** How long rank 0 keeps the control star up at close() for ranks that are still working. */
const HUB_LINGER_MS = 5000;

export function chunkBytes(config: HotweightsConfig): number {
  return Math.round(config.ncclChunkMb * MIB);
}

/** A communicator: its addon id, and its creation (false: this rank is not a member). */
interface Comm {
  readonly id: number;
  readonly done: Promise<boolean>;
}

export interface NcclOpenOptions extends TransportOptions {
  readonly at: RendezvousAddress;
  readonly devices: number;
  readonly split: boolean;
}

export class NcclTransport implements Transport {
  readonly name = 'nccl';
  readonly rank: number;
  readonly worldSize: number;
  /** The CUDA device this rank uses (LOCAL_RANK modulo the devices it sees). */
  readonly device: number;
  readonly #native: NativeNccl;
  readonly #engine: number;
  readonly #channel: ControlChannel;
  readonly #options: NcclOpenOptions;
  readonly #chunkBytes: number;
  readonly #timeoutMs: number;
  readonly #world: Comm;
  /** Participant set ("0,2") -> its communicator, made in prepare. */
  readonly #comms = new Map<string, Comm>();
  /** Every participant set prepare() made a communicator for (on this rank or not). */
  readonly #prepared = new Set<string>();
  readonly #inflight = new Set<Promise<unknown>>();
  #broken: Error | undefined;
  #closed = false;

  private constructor(
    native: NativeNccl,
    engine: number,
    device: number,
    channel: ControlChannel,
    world: Comm,
    o: NcclOpenOptions,
  ) {
    this.#native = native;
    this.#engine = engine;
    this.device = device;
    this.#channel = channel;
    this.#world = world;
    this.#options = o;
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.#chunkBytes = chunkBytes(o.config);
    this.#timeoutMs = o.config.transferTimeoutS * 1000;
  }

  /**
   * Joins the job: rank 0 makes the unique id, the rendezvous hands it to every rank, and every
   * rank creates the world communicator on its device (ncclCommInitRank, collective).
   */
  static async open(native: NativeNccl, o: NcclOpenOptions): Promise<NcclTransport> {
    const { ncclLibrary, cudartLibrary } = o.config;
    const timeoutMs = Math.max(JOIN_TIMEOUT_MS, o.config.transferTimeoutS * 1000);
    const device = readLaunchContext().localRank % o.devices;
    const id = o.rank === 0 ? native.uniqueId(ncclLibrary, cudartLibrary) : new Uint8Array(0);
    const channel = await ControlChannel.join(o.at, {
      label: 'nccl',
      retryHint: 'HOTWEIGHTS_TRANSFER_TIMEOUT_S',
      rank: o.rank,
      worldSize: o.worldSize,
      address: id,
      retries: Math.ceil(timeoutMs / RETRY_DELAY_MS),
      retryDelayMs: RETRY_DELAY_MS,
      timeoutMs,
    });
    const { engine, done } = native.open(ncclLibrary, cudartLibrary, device);
    const world = native.initComm(engine, channel.addresses[0] as Uint8Array, o.worldSize, o.rank);
    const t = new NcclTransport(
      native,
      engine,
      device,
      channel,
      { ...world, done: world.done.then(() => true) },
      o,
    );
    channel.listen({ onMessage: (m) => t.#onControl(m), onLost: (rank) => t.#onLost(rank) });
    try {
      await t.#deadline(
        Promise.all([done, world.done]),
        undefined,
        `joining the NCCL world of ${o.worldSize} ranks on device ${device}`,
        timeoutMs,
      );
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  /** Bytes per ncclBroadcast call (0 = whole bucket). */
  get chunkBytes(): number {
    return this.#chunkBytes;
  }

  /**
   * Makes one communicator per participant set, collectively: every rank of the world walks the
   * same sorted list. With ncclCommSplit every rank takes part in each split (non-members pass
   * NCCL_SPLIT_NOCOLOR); without it, rank 0 makes a unique id per set, broadcasts them over the
   * world communicator, and the members of each set call ncclCommInitRank.
   */
  async prepare(groups: readonly (readonly number[])[]): Promise<void> {
    this.#usable('prepare');
    const all = this.#allRanks();
    const byKey = new Map<string, readonly number[]>();
    for (const g of groups) {
      checkParticipants(g, this.worldSize, 'prepare');
      const key = g.join(',');
      if (g.length >= 2 && key !== all && !this.#prepared.has(key)) byKey.set(key, g);
    }
    const sets = [...byKey.keys()].sort().map((k) => byKey.get(k) as readonly number[]);
    if (sets.length === 0) return;
    // Members and non-members alike: a later prepare() must skip the same sets on every rank.
    for (const g of sets) this.#prepared.add(g.join(','));
    const made: Promise<boolean>[] = [];
    if (this.#options.split) {
      for (const g of sets) {
        const member = g.includes(this.rank);
        const comm = this.#native.split(this.#engine, this.#world.id, member ? 0 : -1, this.rank);
        this.#keep(g, comm, made);
      }
    } else {
      const { ncclLibrary, cudartLibrary } = this.#options.config;
      const ids = new Uint8Array(128 * sets.length);
      if (this.rank === 0)
        sets.forEach((_, i) => {
          ids.set(this.#native.uniqueId(ncclLibrary, cudartLibrary), i * 128);
        });
      // The ids are copied into each ncclCommInitRank call when it is submitted, so after they came.
      const sent = this.#native.bcast(this.#engine, this.#world.id, 0, this.rank, ids, 0);
      await this.#deadline(sent, undefined, `handing out ${sets.length} NCCL unique id(s)`);
      sets.forEach((g, i) => {
        if (!g.includes(this.rank)) return;
        const comm = this.#native.initComm(
          this.#engine,
          ids.subarray(i * 128, (i + 1) * 128),
          g.length,
          g.indexOf(this.rank),
        );
        this.#keep(g, { id: comm.id, done: comm.done.then(() => true) }, made);
      });
    }
    await this.#deadline(Promise.all(made), undefined, `creating ${sets.length} communicator(s)`);
  }

  #keep(g: readonly number[], comm: Comm, made: Promise<boolean>[]): void {
    comm.done.catch(() => {});
    this.#comms.set(g.join(','), comm);
    made.push(comm.done);
  }

  async broadcast(request: BroadcastRequest): Promise<void> {
    const { bucketId, root, ranks, data, signal } = request;
    const what = `bucket ${bucketId}`;
    this.#usable(what);
    if (signal?.aborted) throw signalReason(signal);
    checkBroadcastRequest(request, this.rank, this.worldSize);
    if (data.byteLength === 0 || ranks.length === 1) return;
    const key = ranks.join(',');
    const comm = key === this.#allRanks() ? this.#world : this.#comms.get(key);
    if (!comm) {
      throw new TransportError(
        `${what}: no communicator for the participants [${ranks}]: prepare() must be called by every rank with every participant set first`,
        { code: 'HW_TRANSPORT_INVALID' },
      );
    }
    const sent = this.#native.bcast(
      this.#engine,
      comm.id,
      ranks.indexOf(root),
      ranks.indexOf(this.rank),
      data,
      this.#chunkBytes,
    );
    sent.catch(() => {});
    const work = comm.done.then(() => sent);
    this.#inflight.add(work);
    try {
      await this.#deadline(work, signal, `${what} (${data.byteLength} B from rank ${root} to [${ranks}])`);
    } finally {
      this.#inflight.delete(work);
    }
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#broken) {
      await Promise.allSettled([...this.#inflight]);
      await this.#native.close(this.#engine).catch(() => {});
    }
    // After an abort the engine thread may be stuck for good: nothing there is waited for.
    await this.#channel.close(this.#broken ? 0 : HUB_LINGER_MS);
  }

  #allRanks(): string {
    return Array.from({ length: this.worldSize }, (_, i) => i).join(',');
  }

  #usable(what: string): void {
    if (this.#closed) throw new TransportError(`${what}: the NCCL transport is closed`);
    if (this.#broken) {
      throw new TransportError(
        `${what}: the NCCL transport is unusable after an earlier failure: ${this.#broken.message}`,
        { cause: this.#broken },
      );
    }
  }

  /** Aborts every communicator of this rank (ncclCommAbort) and tells the other ranks why. */
  #abort(failure: Error, tellOthers: boolean): void {
    if (this.#broken) return;
    this.#broken = failure;
    // Others first: once this rank's sockets close, they would see only a lost connection.
    if (tellOthers) this.#channel.abort('nccl', failure.message);
    this.#native.abort(this.#engine, failure.message);
  }

  #onControl(m: ControlMessage): void {
    if (m.t === 'abort' && m.from !== this.rank) {
      this.#abort(new TransportError(`nccl: rank ${m.from} aborted the job: ${m.reason}`), false);
    }
    if (m.t === 'lost') this.#onLost(m.rank);
  }

  #onLost(rank: number): void {
    this.#abort(
      new TransportError(`nccl: rank ${rank} is gone (its control connection dropped without a goodbye)`),
      false,
    );
  }

  async #reasonFromPeers(ms: number): Promise<void> {
    for (let waited = 0; !this.#broken && waited < ms; waited += 20) await sleep(20);
  }

  /**
   * Waits for `work` until the transfer deadline or the signal. Giving up on (or failing in) a
   * collective aborts every communicator: the ranks can no longer agree on what comes next.
   */
  async #deadline(
    work: Promise<unknown>,
    signal: AbortSignal | undefined,
    what: string,
    timeoutMs = this.#timeoutMs,
  ): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const giveUp = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(
          new TimeoutError(
            `NCCL: ${what} did not finish within ${timeoutMs / 1000} s on rank ${this.rank}: a peer rank is dead or stuck; the communicators were aborted (ncclCommAbort)`,
            { details: { rank: this.rank, timeoutMs } },
          ),
        );
      }, timeoutMs);
      if (signal) {
        onAbort = () => reject(signalReason(signal));
        signal.addEventListener('abort', onAbort, { once: true });
      }
    });
    try {
      await Promise.race([work, giveUp]);
    } catch (err) {
      const ours = isErrorKind(err, 'TimeoutError') || err === (signal?.reason as unknown) || signal?.aborted;
      // A peer that aborts closes its connections as it tells the others why: the lost connection
      // often arrives first. The reason, when it follows shortly, says what really happened.
      if (!ours) await this.#reasonFromPeers(EXPLAIN_MS);
      const why = this.#broken ?? (err as Error);
      const failure = ours
        ? (err as Error)
        : new TransportError(`NCCL: ${what} failed on rank ${this.rank}: ${why.message}`, { cause: err });
      this.#abort(failure, true);
      throw failure;
    } finally {
      clearTimeout(timer);
      if (signal && onAbort) signal.removeEventListener('abort', onAbort);
    }
  }
}
