/**
 * An adapter applies a staged, verified update to whatever serves the model (a running vLLM, a
 * directory on disk, memory for tests). The Replicator never touches live weights; adapters do,
 * and only in `commit`.
 */
import type { Manifest } from './manifest.js';
import type { Plan, PlanBucket } from './plan.js';
import type { StagingAgent } from './staging.js';

export interface AdapterUpdate {
  readonly plan: Plan;
  /** The next version's manifest, when the adapter needs the full layout (directory adapter). */
  readonly manifest?: Manifest;
  readonly staging: StagingAgent;
}

/**
 * A prepare in progress (see `Adapter.beginPrepare`): verified buckets are handed over one by one
 * while later ones still land, so staging can reuse their memory and writing overlaps receiving.
 */
export interface AdapterPreparation {
  /**
   * Takes one consumed bucket whose items are all verified. `bytes` may be reused for another
   * bucket once this resolves. Buckets arrive in any order; a split tensor's parts in several.
   */
  bucket(bucket: PlanBucket, bytes: Uint8Array): Promise<void>;
  /** Every bucket of this rank was handed over: completes the version exactly as `prepare` would. */
  finish(): Promise<void>;
  /** Drops whatever was prepared so far (the live version was never touched). */
  discard(): Promise<void>;
}

export interface Adapter {
  readonly name: string;
  /** Version currently live, or null before the first commit. */
  currentVersion(): Promise<string | null>;
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
  /** Makes the prepared version live atomically. */
  commit(version: string): Promise<void>;
  /** Discards a prepared version that will not be committed. */
  abort(version: string): Promise<void>;
  /** Makes the previous version live again. Throws when there is none. */
  rollback(): Promise<string>;
}
