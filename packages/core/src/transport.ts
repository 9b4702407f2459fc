/**
 * The transport contract. A transport moves one bucket's bytes from a root rank to the ranks
 * that consume it (a broadcast). Windowing, retries, hashing, metrics and progress are NOT a
 * transport's job: core's Replicator does them once for every transport.
 */
import type { HotweightsConfig } from './config.js';
import type { DeviceBuffer, MemoryKind } from './memory.js';
import type { StagingAgent } from './staging.js';

/** Result of a probe. A probe never throws: failures become `{available: false, reason}`. */
export type ProbeResult =
  | { readonly available: true; readonly detail?: string }
  | { readonly available: false; readonly reason: string };

export interface ProbeContext {
  readonly rank: number;
  readonly worldSize: number;
  /** `none` when no launcher (mpirun, torchrun) started this process. */
  readonly launcher: 'env' | 'openmpi' | 'pmix' | 'none';
  readonly config: HotweightsConfig;
  /**
   * True when the caller will hand `create` an `exchange` (a fleet of separately started workers
   * meeting through the coordinator), so a transport needs no MASTER_ADDR of its own.
   */
  readonly exchange?: boolean;
}

/**
 * A rendezvous someone else runs (the coordinator, for a fleet of separately started workers):
 * posts this rank's `value` under `round` and resolves with every rank's value, by rank, once all
 * of them have posted. Rejects at its deadline naming the ranks that never posted, or when the
 * update is aborted.
 */
export type AddressExchange = (round: string, value: string) => Promise<readonly string[]>;

export interface TransportOptions {
  readonly rank: number;
  readonly worldSize: number;
  readonly config: HotweightsConfig;
  /**
   * Rendezvous information for transports that need to find their peers (a directory on this
   * host for `local`, `MASTER_ADDR:MASTER_PORT` for socket transports). Transports document
   * what they use.
   */
  readonly rendezvous?: Readonly<Record<string, string>>;
  /**
   * A prom-client Registry the transport may register its own metrics in (the CLI's metrics
   * server exports it). Typed loosely so core needs no prom-client; transports document theirs.
   */
  readonly metrics?: object;
  /** The coordinator's rendezvous, when there is one (see AddressExchange). */
  readonly exchange?: AddressExchange;
}

export interface TransportProvider {
  /** Short lowercase name used by `--transport` (`local`, `mpi`, `ucx`, …). */
  readonly name: string;
  /** Higher wins. Built-in: cuda-ipc 50, nccl 40, mpi 30, ucx 20, local 10. */
  readonly priority: number;
  /** Version of the package providing it (shown by `hotweights transports`). */
  readonly version?: string;
  readonly description?: string;
  /** True when it moves bytes between hosts (mpi, ucx); a fleet on several nodes needs one. */
  readonly spansHosts?: boolean;
  /**
   * True when `create` with `rendezvous.mode = 'fetch'` (and an `exchange`) opens a transport that
   * only fetches from ranks that serve: how a rank arriving after the broadcasts gets its share.
   */
  readonly lateFetch?: boolean;
  probe(ctx: ProbeContext): Promise<ProbeResult>;
  create(options: TransportOptions): Promise<Transport>;
  /** Device API whose memory this provider can stage in (`cuda`), i.e. what `--device` names. */
  readonly device?: string;
  /** Opens a staging agent in that device's memory (`--device <device>`); throws StagingError when it cannot. */
  createStaging?(options: DeviceStagingOptions): Promise<StagingAgent>;
}

/** What a device staging agent is opened with. */
export interface DeviceStagingOptions {
  readonly rank: number;
  /** Rank on this host (picks the device when the config names none). */
  readonly localRank: number;
  readonly config: HotweightsConfig;
  /** Page-lock the host copies (`--pinned`): faster copies to and from the device. */
  readonly pinned: boolean;
}

export interface BroadcastRequest {
  readonly bucketId: number;
  /** Rank that holds the bytes. */
  readonly root: number;
  /**
   * Every participant, sorted ascending, root included. Only these ranks call broadcast for this
   * bucket; every participant issues its broadcasts in the same bucket order.
   */
  readonly ranks: readonly number[];
  /** On the root: the bytes to send. On other ranks: where the bytes land (same length). */
  readonly data: Uint8Array;
  /**
   * Device memory of the bucket, given only to transports whose `memoryKinds` include `device`
   * when the rank stages on a device: on the root the bytes to send are there (and also in
   * `data`), on other ranks they must land there (`data` is then scratch the transport may leave
   * untouched). Same length as `data`.
   */
  readonly device?: DeviceBuffer;
  readonly signal?: AbortSignal;
}

export interface FetchRequest {
  readonly bucketId: number;
  /** Rank that holds the bucket (it must have called `serve` for it). */
  readonly from: number;
  /** Where `data` starts in the bucket (default 0): a fetch may take one stripe of a bucket. */
  readonly offset?: number;
  readonly data: Uint8Array;
  readonly signal?: AbortSignal;
}

export interface Transport {
  readonly name: string;
  readonly rank: number;
  readonly worldSize: number;
  /**
   * Memory kinds `broadcast` moves (default `['host']`). A transport listing `device` takes
   * `BroadcastRequest.device`; any other gets host memory and the Replicator copies to and from
   * the device around it.
   */
  readonly memoryKinds?: readonly MemoryKind[];
  /**
   * Called once by every rank of the world before the first broadcast, with every distinct
   * participant set the plan will use, so transports that need collective set-up (MPI
   * sub-communicators) can do it without any rank waiting forever.
   */
  prepare?(groups: readonly (readonly number[])[]): Promise<void>;
  /**
   * Moves `data` from `root` to every rank in `ranks`. Several broadcasts may be in flight at
   * once (the Replicator's window); they are issued in the same order on every participant.
   * Rejects (never hangs past the signal) when a peer fails.
   */
  broadcast(request: BroadcastRequest): Promise<void>;
  /** Optional point-to-point: make a bucket available to late joiners. */
  serve?(bucketId: number, data: Uint8Array): void;
  /** Optional point-to-point: fetch a served bucket from another rank. */
  fetch?(request: FetchRequest): Promise<void>;
  /** Frees every resource. Safe to call twice. */
  close(): Promise<void>;
}

/** Which range of the core API a plugin was written against. */
export interface TransportPackageManifest {
  /** Module (relative to the package root) whose default or `provider` export is a TransportProvider. */
  readonly transport: string;
  /** semver range of @hotweights/core's CORE_API_VERSION the plugin supports. */
  readonly coreApi: string;
}
