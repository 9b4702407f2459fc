/**
 * What adapters that hand staged bytes to another process on the host (vLLM workers, a training
 * process) send it: each staged bucket's shared-memory segment with its tensor items, in the
 * plan's field names. Headers and whole files are not parameters, so only tensor items travel.
 */
import { AdapterError } from './errors.js';
import type { Plan, PlanItem } from './plan.js';
import type { StagingAgent } from './staging.js';

export interface SegmentTensorItem {
  readonly key: string;
  readonly tensor: string;
  readonly dtype: string;
  readonly shape: readonly number[];
  /** Where the item starts inside the bucket. */
  readonly offset: number;
  readonly nbytes: number;
  readonly hash: string;
  readonly part: PlanItem['part'] | null;
}

export interface StagedSegment {
  readonly path: string;
  /** Where the bucket starts in the file, and its bytes. */
  readonly offset: number;
  readonly length: number;
  readonly items: readonly SegmentTensorItem[];
}

/**
 * The staged buckets of `plan` on `rank` that hold tensors. A bucket the rank consumes that is not
 * staged, or not in a shared-memory segment, is an AdapterError; `adapter` names who needs it.
 */
export function stagedSegments(
  plan: Plan,
  staging: StagingAgent,
  rank: number,
  adapter: string,
): StagedSegment[] {
  const out: StagedSegment[] = [];
  for (const bucket of plan.buckets) {
    const staged = staging.get(plan.version, bucket.bucket_id);
    if (!staged) {
      if (bucket.consumer_ranks.includes(rank)) {
        throw new AdapterError(`bucket ${bucket.bucket_id} of ${plan.version} is not staged on rank ${rank}`);
      }
      continue;
    }
    if (!staged.segment) {
      throw new AdapterError(
        `bucket ${bucket.bucket_id} of ${plan.version} is not in a shared-memory segment: the ${adapter} ` +
          'adapter needs host staging (HOTWEIGHTS_STAGING_DIR on the same host)',
      );
    }
    const items: SegmentTensorItem[] = [];
    for (const it of bucket.items) {
      if (it.kind !== 'tensor' || it.dtype === null || it.shape === null) continue;
      const { key, tensor, dtype, shape, offset, nbytes, hash } = it;
      items.push({ key, tensor, dtype, shape, offset, nbytes, hash, part: it.part ?? null });
    }
    if (items.length > 0) out.push({ ...staged.segment, items });
  }
  return out;
}
