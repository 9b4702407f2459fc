/**
 * The transfer plan: which bytes move, packed into size-bounded buckets, and which ranks consume
 * each bucket. JSON on disk; field names follow the seed documents (`plan.buckets[].items[]`).
 */

/** Bumped only on incompatible changes; every load checks it. */
export const PLAN_VERSION = 1 as const;
/** Plans with patch items (issue #16) are version 2; plans without any stay version 1. */
export const PLAN_VERSION_PATCHES = 2 as const;
/** Every plan_version this hotweights reads. */
export const PLAN_VERSIONS: readonly number[] = [PLAN_VERSION, PLAN_VERSION_PATCHES];
export const PLAN_SCHEMA = 'hotweights.plan' as const;
/**
 * Largest world size any command accepts. Consumer sets are lists of ranks, so a plan for a
 * world of 2^31 would need gigabytes per bucket; no fleet comes near this.
 */
export const MAX_WORLD_SIZE = 65_536;

/** Part of a tensor that was split because it is larger than a bucket. */
export interface PlanItemPart {
  /** 0-based part number; parts of one tensor are contiguous byte ranges in index order. */
  readonly index: number;
  readonly count: number;
  /** Offset of this part inside the whole tensor's bytes. */
  readonly tensor_offset: number;
  /** Size of the whole tensor. */
  readonly tensor_nbytes: number;
}

export interface PlanItem {
  /** Stable identity: `<tensor>:<shard_rank>` (whole files use their path as `tensor`). */
  readonly key: string;
  readonly tensor: string;
  readonly shard_rank: number;
  /** What the bytes are: a tensor's data, a safetensors header, or a whole non-tensor file. */
  readonly kind: 'tensor' | 'header' | 'file';
  /** Bytes of this item (of this part, for split tensors). */
  readonly nbytes: number;
  /**
   * `<algo>:<hex>` of the item's bytes. For a split tensor every part carries the hash of the
   * whole tensor; it is checked once all parts have landed.
   */
  readonly hash: string;
  /** File that holds the bytes, relative to the checkpoint root, `/`-separated, never escaping it. */
  readonly uri: string;
  /** Byte offset of the item's bytes inside `uri`. */
  readonly file_offset: number;
  /** safetensors dtype (`BF16`, `F32`, …) or null for headers and whole files. */
  readonly dtype: string | null;
  readonly shape: readonly number[] | null;
  /** Byte offset of the item inside its bucket (aligned to `plan.alignment`). */
  readonly offset: number;
  readonly part?: PlanItemPart;
  /**
   * Set when the item's bytes are a patch against the previous version's bytes of the same key
   * (never together with `part`): `nbytes` is the patch's size, `hash` still the whole new
   * tensor's. A rank rebuilds the tensor from its live base and checks it against `hash`.
   */
  readonly patch?: PlanItemPatch;
}

/** Lossless encodings of a tensor's difference to its previous version (manifest's patch-codec). */
export type PatchEncoding = 'sparse-brotli' | 'xor-brotli';

export interface PlanItemPatch {
  readonly encoding: PatchEncoding;
  /** `<algo>:<hex>` of the base tensor the patch applies to (the previous version's bytes). */
  readonly base_hash: string;
  /** `<algo>:<hex>` of the patch bytes themselves (checked as they land, like any item). */
  readonly hash: string;
  /** Where the patch bytes are in the plan's patch file (`Plan.patches.path`). */
  readonly file_offset: number;
  /** Bytes of the whole new tensor the patch rebuilds. */
  readonly tensor_nbytes: number;
}

export interface PlanBucket {
  readonly bucket_id: number;
  /** Bytes of the bucket buffer (last item's offset + nbytes). */
  readonly size: number;
  /** Ranks that must receive this bucket, sorted ascending. The source rank sends it. */
  readonly consumer_ranks: readonly number[];
  readonly items: readonly PlanItem[];
}

export interface Plan {
  readonly schema: typeof PLAN_SCHEMA;
  readonly plan_version: typeof PLAN_VERSION | typeof PLAN_VERSION_PATCHES;
  /** Version the plan moves to. */
  readonly version: string;
  /** Version the delta was computed against (null: full plan). */
  readonly prev_version: string | null;
  readonly model_id: string | null;
  readonly created_at: string;
  /** Hash algorithm of every item hash, e.g. `blake3`. */
  readonly hash_algo: string;
  /** Where the bytes come from: the checkpoint directory on the source rank. */
  readonly source: { readonly root: string; readonly rank: number };
  /** The next version's manifest: its digest, and where it was when the plan was made. */
  readonly next_manifest: { readonly digest: string; readonly path: string | null };
  readonly bucket_bytes: number;
  readonly alignment: number;
  /** Sum of item bytes over all buckets (what moves). */
  readonly total_bytes: number;
  /** Bytes of the whole next version (what a full copy would move). */
  readonly checkpoint_bytes: number;
  /** Highest rank + 1 the plan was made for, when known. */
  readonly world_size: number | null;
  readonly buckets: readonly PlanBucket[];
  /** Keys present in the previous manifest and absent from the next one. */
  readonly removed: readonly string[];
  /**
   * Version 2 plans with patch items: the file on the source host that holds every patch's bytes
   * (absolute; read by the source rank only, like `source.root`).
   */
  readonly patches?: { readonly path: string; readonly bytes: number };
  /** `sha256:<hex>` of the canonical JSON of the plan without this field. */
  readonly digest: string;
}
