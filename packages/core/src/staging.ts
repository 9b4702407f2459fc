/**
 * Shadow staging: where received buckets wait, verified, until commit. Host staging keeps them in
 * shared-memory segments that other processes on the host can map; device staging (CUDA) keeps
 * them in device buffers.
 */
import type { PlanBucket } from './plan.js';

export interface StagedBucket {
  readonly version: string;
  readonly bucketId: number;
  /** The bucket's bytes (a view of the segment). */
  readonly bytes: Uint8Array;
  /** Shared-memory segment holding the bytes, for other processes on the host. */
  readonly segment?: { readonly path: string; readonly offset: number; readonly length: number };
}

export interface StagingAgent {
  /** Reserves room for a bucket of `version`. Fails with StagingError before writing anything. */
  allocate(version: string, bucket: PlanBucket): Promise<StagedBucket>;
  /** A bucket staged earlier in this process, if any. */
  get(version: string, bucketId: number): StagedBucket | undefined;
  /** Every bucket staged for a version, in bucket order. */
  list(version: string): readonly StagedBucket[];
  /** Drops one bucket whose bytes were handed on; its memory may serve a later bucket. */
  drop?(version: string, bucketId: number): Promise<void>;
  /** Drops everything staged for `version`. */
  release(version: string): Promise<void>;
  /** Removes segments left by crashed runs; returns how many were removed. */
  reclaimStale(): Promise<number>;
}
