/**
 * The payload `hw_prepare` takes (see python/src/hotweights_vllm/payload.py): this rank's staged
 * buckets as shared-memory segments, each with its plan items. Only tensor items travel; headers
 * and whole files are not weights a running model loads.
 */
import { AdapterError, type Plan, type StagingAgent } from '@hotweights/core';

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
  readonly segments: readonly {
    readonly path: string;
    readonly offset: number;
    readonly length: number;
    readonly ranks: readonly number[] | null;
    readonly items: readonly Record<string, unknown>[];
  }[];
}

export function preparePayload(plan: Plan, staging: StagingAgent, o: PayloadOptions): PreparePayload {
  const segments: PreparePayload['segments'][number][] = [];
  for (const bucket of plan.buckets) {
    const staged = staging.get(plan.version, bucket.bucket_id);
    if (!staged) {
      if (bucket.consumer_ranks.includes(o.rank)) {
        throw new AdapterError(
          `bucket ${bucket.bucket_id} of ${plan.version} is not staged on rank ${o.rank}`,
        );
      }
      continue;
    }
    if (!staged.segment) {
      throw new AdapterError(
        `bucket ${bucket.bucket_id} of ${plan.version} is not in a shared-memory segment: the vLLM ` +
          'adapter needs host staging (HOTWEIGHTS_STAGING_DIR on the same host as vLLM)',
      );
    }
    const items = bucket.items
      .filter((it) => it.kind === 'tensor' && it.dtype !== null && it.shape !== null)
      .map((it) => ({
        key: it.key,
        tensor: it.tensor,
        dtype: it.dtype,
        shape: it.shape,
        offset: it.offset,
        nbytes: it.nbytes,
        hash: it.hash,
        part: it.part ?? null,
      }));
    if (items.length === 0) continue;
    // Every tensor-parallel rank of the server loads the full tensors and keeps its own slice.
    segments.push({ ...staged.segment, ranks: null, items });
  }
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
