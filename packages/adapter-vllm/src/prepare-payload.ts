/**
 * The payload `hw_prepare` takes (see python/src/hotweights_vllm/payload.py): this rank's staged
 * buckets as shared-memory segments, each with its plan items. Only tensor items travel; headers
 * and whole files are not weights a running model loads.
 */
import { type Plan, type StagedSegment, type StagingAgent, stagedSegments } from '@hotweights/core';

export const PAYLOAD_SCHEMA = 'hotweights.vllm.prepare';
export const PAYLOAD_VERSION = 1;

export interface PayloadOptions {
  readonly rank: number;
  readonly verifyHashes: boolean;
  readonly allowDtypeCast: boolean;
  /** Checkpoint names under this prefix go to the speculative-decoding drafter ('' for none). */
  readonly drafterPrefix: string;
}

export interface PreparePayload {
  readonly schema: typeof PAYLOAD_SCHEMA;
  readonly payload_version: typeof PAYLOAD_VERSION;
  readonly version: string;
  readonly verify_hashes: boolean;
  readonly allow_dtype_cast: boolean;
  readonly drafter_prefix: string;
  readonly segments: readonly (StagedSegment & { readonly ranks: readonly number[] | null })[];
}

export function preparePayload(plan: Plan, staging: StagingAgent, o: PayloadOptions): PreparePayload {
  // Every tensor-parallel rank of the server loads the full tensors and keeps its own slice.
  const segments = stagedSegments(plan, staging, o.rank, 'vLLM').map((seg) => ({ ...seg, ranks: null }));
  return {
    schema: PAYLOAD_SCHEMA,
    payload_version: PAYLOAD_VERSION,
    version: plan.version,
    verify_hashes: o.verifyHashes,
    allow_dtype_cast: o.allowDtypeCast,
    drafter_prefix: o.drafterPrefix,
    segments,
  };
}
