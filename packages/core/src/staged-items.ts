/**
 * What adapters read from staging: each planned item's landed bytes by key. A split tensor's
 * parts come back as one entry whose chunks sit at their offsets inside the tensor.
 */
import { AdapterError } from './errors.js';
import type { Plan, PlanItem } from './plan.js';
import type { StagingAgent } from './staging.js';

export interface StagedItem {
  /** The item (for split tensors, its first part), with key, uri, file_offset and hash. */
  readonly item: PlanItem;
  /** Bytes of the whole item (tensor), possibly in several chunks. */
  readonly nbytes: number;
  readonly chunks: readonly { readonly at: number; readonly bytes: Uint8Array }[];
}

/**
 * Every item of `plan` staged on this rank. Buckets this rank did not consume are skipped; a
 * consumed bucket that is missing, or a split tensor with a missing part, is an AdapterError.
 */
export function stagedItems(plan: Plan, staging: StagingAgent, rank?: number): Map<string, StagedItem> {
  const out = new Map<
    string,
    { item: PlanItem; nbytes: number; chunks: { at: number; bytes: Uint8Array }[] }
  >();
  for (const bucket of plan.buckets) {
    const staged = staging.get(plan.version, bucket.bucket_id);
    if (!staged) {
      if (rank !== undefined && bucket.consumer_ranks.includes(rank)) {
        throw new AdapterError(`bucket ${bucket.bucket_id} of ${plan.version} is not staged on rank ${rank}`);
      }
      continue;
    }
    for (const item of bucket.items) {
      const bytes = staged.bytes.subarray(item.offset, item.offset + item.nbytes);
      const whole = item.part?.tensor_nbytes ?? item.nbytes;
      let e = out.get(item.key);
      if (!e) {
        e = {
          item: item.part ? { ...item, file_offset: item.file_offset - item.part.tensor_offset } : item,
          nbytes: whole,
          chunks: [],
        };
        out.set(item.key, e);
      }
      e.chunks.push({ at: item.part?.tensor_offset ?? 0, bytes });
    }
  }
  for (const [key, e] of out) {
    const have = e.chunks.reduce((n, c) => n + c.bytes.byteLength, 0);
    if (have !== e.nbytes) {
      throw new AdapterError(
        `item ${key} of ${plan.version}: only ${have} of ${e.nbytes} bytes are staged (a part is missing)`,
        {
          details: { key },
        },
      );
    }
    e.chunks.sort((a, b) => a.at - b.at);
  }
  return out;
}
