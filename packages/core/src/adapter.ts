/**
 * An adapter applies a staged, verified update to whatever serves the model (a running vLLM, a
 * directory on disk, memory for tests). The Replicator never touches live weights; adapters do,
 * and only in `commit`.
 */
import type { FileHandle } from 'node:fs/promises';
import type { HotweightsConfig } from './config.js';
import type { Manifest } from './manifest.js';
import type { DeviceBuffer } from './memory.js';
import type { Plan, PlanBucket, PlanItem } from './plan.js';
import type { StagingAgent } from './staging.js';
import type { ProbeResult } from './transport.js';

export interface AdapterUpdate {
  readonly plan: Plan;
  /** The next version's manifest, when the adapter needs the full layout (directory adapter). */
  readonly manifest?: Manifest;
  readonly staging: StagingAgent;
}

/** An item's bytes in an open checkpoint file on this host (see `AdapterPreparation.copyItem`). */
export interface ItemSource {
  readonly file: FileHandle;
  /** Where the item's bytes start in the file (its `file_offset`). */
  readonly offset: number;
}

/** Where an item's bytes landed in a file of the version being prepared. */
export interface LandedRange {
  /** Absolute path of the file. */
  readonly path: string;
  /** Where the item's bytes start in it. */
  readonly offset: number;
}

/**
 * A prepare in progress (see `Adapter.beginPrepare`): verified buckets are handed over one by one
 * while later ones still land, so staging can reuse their memory and writing overlaps receiving.
 */
export interface AdapterPreparation {
  /**
   * Takes one consumed bucket whose items are all verified. `bytes` may be reused for another
   * bucket once this resolves. Buckets arrive in any order; a split tensor's parts in several; a
   * bucket of patch items (rebuilt into whole tensors first) in several calls, each with some of
   * its items.
   * With device staging, `device` holds the same verified bytes in device memory (adapters that
   * feed a GPU copy from there; others ignore it).
   */
  bucket(bucket: PlanBucket, bytes: Uint8Array, device?: DeviceBuffer): Promise<void>;
  /**
   * Optional, for adapters whose version lives in files: lands one item straight from the
   * checkpoint file into its place in the version being prepared (a kernel copy; no staging, no
   * second copy through memory) and says where it landed. The caller verifies the item there
   * before anything commits; a mismatch discards the preparation. The Replicator uses this for
   * buckets whose only participant is the source rank itself (one host, one rank); every other
   * bucket arrives through `bucket`.
   */
  copyItem?(item: PlanItem, source: ItemSource): Promise<LandedRange>;
  /** Every bucket of this rank was handed over: completes the version exactly as `prepare` would. */
  finish(): Promise<void>;
  /** Drops whatever was prepared so far (the live version was never touched). */
  discard(): Promise<void>;
}

export interface Adapter {
  readonly name: string;
  /** Version currently live, or null before the first commit. */
  currentVersion(): Promise<string | null>;
  /** Version `rollback` would make live, or null when none is kept (optional). */
  previousVersion?(): Promise<string | null>;
  /**
   * Prepares the new version from staging without making it live (e.g. writes it beside the
   * current one). After this resolves, `commit` must be able to flip without failing for lack of
   * data. Throws AdapterError when it cannot; live weights stay untouched.
   */
  prepare(update: AdapterUpdate): Promise<void>;
  /**
   * Optional streaming form of `prepare`: checks the update and starts preparing before any
   * bucket lands; the caller hands over each bucket once verified, then calls `finish`.
   */
  beginPrepare?(update: Omit<AdapterUpdate, 'staging'>): Promise<AdapterPreparation>;
  /**
   * Optional: whether `commit(version)` can make `version` live without more data (it was
   * prepared, or is kept as the previous version). A worker that restarts, or whose fleet rolls
   * back, finishes from what it has instead of fetching the version again.
   */
  hasVersion?(version: string): Promise<boolean>;
  /**
   * Optional: the live version's bytes of one item (by plan key), or null when the live version
   * has no such item. What a patch item is applied to (issue #16): the runtime rebuilds the new
   * tensor from these bytes and checks both against the plan's hashes; adapters without it
   * refuse plans with patch items. `into`, when given, is a buffer of the item's size the adapter
   * may read the bytes into and return: the runtime then rebuilds the tensor in place, without a
   * copy of it. An adapter may return bytes of its own instead; those are never written to.
   */
  liveItem?(key: string, into?: Uint8Array): Promise<Uint8Array | null>;
  /** Makes the prepared version live atomically. */
  commit(version: string): Promise<void>;
  /** Discards a prepared version that will not be committed. */
  abort(version: string): Promise<void>;
  /** Makes the previous version live again. Throws when there is none. */
  rollback(): Promise<string>;
}

/** What an adapter is made for (and what its probe is asked about). */
export interface AdapterOptions {
  readonly rank: number;
  readonly worldSize: number;
  readonly config: HotweightsConfig;
  /**
   * Where this rank's versions live, for adapters that keep them in a place (`--target`; the CLI
   * gives each rank of a multi-rank job its own `DIR/rank-<r>`). Adapters document whether they
   * need it.
   */
  readonly target?: string;
  /**
   * Record each committed and rolled-back manifest in `config.stateDir` (what `hotweights plan`
   * diffs against). One rank per job does, so there is one record per job.
   */
  readonly recordCommitted?: boolean;
  /** Adapter-specific settings (`--adapter-option KEY=VALUE`); adapters document the keys they take. */
  readonly settings?: Readonly<Record<string, string>>;
}

export interface AdapterProvider {
  /** Short lowercase name used by `--adapter` (`directory`, `memory`, `vllm`, …). */
  readonly name: string;
  /** One line for `hotweights adapters`. */
  readonly description?: string;
  /** Version of the package providing it (shown by `hotweights adapters`). */
  readonly version?: string;
  /**
   * Whether the adapter can work here, for these options (a reachable server, a writable target,
   * …). Never throws: failures are `{available: false, reason}`.
   */
  probe(options: AdapterOptions): Promise<ProbeResult>;
  /** Opens the adapter (nothing live changes until `commit`). Throws AdapterError for bad options. */
  create(options: AdapterOptions): Promise<Adapter>;
}

/** The `"hotweights"` field of an adapter package's package.json. */
export interface AdapterPackageManifest {
  /** Module (relative to the package root) whose default or `provider` export is an AdapterProvider. */
  readonly adapter: string;
  /** semver range of @hotweights/core's CORE_API_VERSION the plugin supports. */
  readonly coreApi: string;
}
