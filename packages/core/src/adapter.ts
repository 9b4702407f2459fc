/**
 * An adapter applies a staged, verified update to whatever serves the model (a running vLLM, a
 * directory on disk, memory for tests). The Replicator never touches live weights; adapters do,
 * and only in `commit`.
 */
import type { Manifest } from './manifest.js';
import type { Plan } from './plan.js';
import type { StagingAgent } from './staging.js';

export interface AdapterUpdate {
  readonly plan: Plan;
  /** The next version's manifest, when the adapter needs the full layout (directory adapter). */
  readonly manifest?: Manifest;
  readonly staging: StagingAgent;
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
  /** Makes the prepared version live atomically. */
  commit(version: string): Promise<void>;
  /** Discards a prepared version that will not be committed. */
  abort(version: string): Promise<void>;
  /** Makes the previous version live again. Throws when there is none. */
  rollback(): Promise<string>;
}
