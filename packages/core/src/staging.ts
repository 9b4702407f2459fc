/**
 * Shadow staging: where received buckets wait, verified, until commit. Host staging keeps them in
 * shared-memory segments that other processes on the host can map; device staging (CUDA) keeps
 * them in device buffers.
 */
import type { DeviceBuffer, MemoryKind } from './memory.js';
import type { PlanBucket } from './plan.js';

export interface StagedBucket {
  readonly version: string;
  readonly bucketId: number;
  /**
   * The bucket's bytes in host memory (a view of the segment). For a device-staged bucket this is
   * its host copy: the source fills it from the checkpoint, and on consumers the Replicator copies
   * the landed device bytes back into it to verify them, so adapters that only read host memory
   * get exactly the verified bytes.
   */
  readonly bytes: Uint8Array;
  /** The bucket in device memory, for device staging (same length as `bytes`). */
  readonly device?: DeviceBuffer;
  /** Shared-memory segment holding the bytes, for other processes on the host. */
  readonly segment?: { readonly path: string; readonly offset: number; readonly length: number };
}

export interface StagingAgent {
  /** Where `allocate` puts buckets (default `host`); `device` buckets carry `StagedBucket.device`. */
  readonly memoryKind?: MemoryKind;
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
