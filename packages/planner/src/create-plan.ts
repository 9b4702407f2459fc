/**
 * createPlan: the delta between two manifests, packed into buckets.
 *
 * Delta on (tensor, shard_rank) and hash: entries of `next` that are new or whose hash or size
 * changed are planned; keys only in `prev` are reported in `removed`. A tensor larger than a
 * bucket is split into byte-range parts of at most one bucket each. Items are packed first-fit
 * decreasing with aligned offsets; each bucket's consumers are the union of its items' consumers.
 */
import { resolve } from 'node:path';
import {
  ConfigError,
  type Manifest,
  type ManifestFile,
  PLAN_SCHEMA,
  PLAN_VERSION,
  type Plan,
  type PlanBucket,
  type PlanItem,
  type PlanItemPart,
  toColumnar,
} from '@hotweights/core';
import { type ConsumerOptions, consumerResolver } from './consumers.js';
import { packFirstFitDecreasing } from './packing.js';
import { planDigest } from './plan-digest.js';

export const DEFAULT_ALIGNMENT = 256;

export interface CreatePlanOptions {
  readonly prev: Manifest | null;
  readonly next: Manifest;
  /** Checkpoint directory of `next` on the source rank (made absolute). */
  readonly checkpointRoot: string;
  /** Where the next manifest is (recorded in the plan for workers), or null. */
  readonly nextManifestPath: string | null;
  readonly bucketBytes: number;
  /** Item offset alignment inside a bucket, a power of two (default 256). */
  readonly alignment?: number;
  readonly sourceRank?: number;
  /** Ranks 0..worldSize-1 (default 1). */
  readonly worldSize?: number;
  readonly consumers?: ConsumerOptions;
  readonly createdAt?: string;
}

interface PendingItem {
  /** Index of the entry in next. */
  readonly entry: number;
  readonly nbytes: number;
  readonly part?: PlanItemPart;
}

export function createPlan(options: CreatePlanOptions): Plan {
  const alignment = options.alignment ?? DEFAULT_ALIGNMENT;
  if (!Number.isSafeInteger(alignment) || alignment < 1 || (alignment & (alignment - 1)) !== 0)
    throw new ConfigError(`alignment must be a power of two >= 1 (got ${alignment})`);
  const bucketBytes = options.bucketBytes;
  if (!Number.isSafeInteger(bucketBytes) || bucketBytes < alignment)
    throw new ConfigError(
      `bucket size must be an integer of at least the alignment ${alignment} bytes (got ${bucketBytes})`,
    );
  const worldSize = options.worldSize ?? 1;
  if (!Number.isSafeInteger(worldSize) || worldSize < 1)
    throw new ConfigError(`world size must be >= 1 (got ${worldSize})`);
  const sourceRank = options.sourceRank ?? 0;
  const next = toColumnar(options.next);
  const prev = options.prev ? toColumnar(options.prev) : null;
  if (prev && prev.hash_algo !== next.hash_algo)
    throw new ConfigError(
      `previous manifest (version ${prev.version}) uses ${prev.hash_algo} and the next (version ${next.version}) uses ${next.hash_algo}: publish both with the same --hash`,
    );

  next.checkUniqueKeys();

  // Delta.
  const nc = next.columns;
  const pending: PendingItem[] = [];
  let maxShard = 0;
  // Usually entry i of prev is the same tensor as entry i of next (same layout, new values):
  // matching by position first avoids a lookup per entry; the key index handles the rest.
  const pc = prev?.columns;
  const prevMatched = prev ? new Uint8Array(prev.size) : null;
  // Same names in the same order (one string comparison): no per-entry name work at all.
  const sameNames = pc ? pc.tensor.sameAs(nc.tensor) : false;
  for (let i = 0; i < next.size; i++) {
    const sr = nc.shard_rank[i] as number;
    if (sr > maxShard) maxShard = sr;
    if (prev && pc && prevMatched) {
      const j =
        i < prev.size && pc.shard_rank[i] === sr && (sameNames || pc.tensor.equals(i, nc.tensor, i))
          ? i
          : prev.indexOfTensor(nc.tensor.get(i), sr);
      if (j >= 0) {
        prevMatched[j] = 1;
        if (pc.nbytes[j] === nc.nbytes[i] && prev.sameHash(j, next, i)) continue;
      }
    }
    const nbytes = nc.nbytes[i] as number;
    if (nbytes <= bucketBytes) {
      pending.push({ entry: i, nbytes });
      continue;
    }
    const count = Math.ceil(nbytes / bucketBytes);
    for (let p = 0; p < count; p++) {
      const tensorOffset = p * bucketBytes;
      pending.push({
        entry: i,
        nbytes: Math.min(bucketBytes, nbytes - tensorOffset),
        part: { count, index: p, tensor_nbytes: nbytes, tensor_offset: tensorOffset },
      });
    }
  }
  const removed: string[] = [];
  if (prev) {
    for (let j = 0; j < prev.size; j++) {
      if (!prevMatched?.[j]) removed.push(prev.key(j));
    }
    removed.sort();
  }

  // Packing: items are grouped by consumer set first, so a bucket only goes to ranks that need
  // all of it (TP-scoped buckets); groups are packed in order of first appearance.
  const consumersOf = consumerResolver(options.consumers ?? {}, worldSize, maxShard + 1);
  const groups = new Map<readonly number[], number[]>();
  for (let k = 0; k < pending.length; k++) {
    const p = pending[k] as PendingItem;
    const ranks = consumersOf(nc.tensor.get(p.entry), nc.shard_rank[p.entry] as number, next.kindOf(p.entry));
    let g = groups.get(ranks);
    if (!g) {
      g = [];
      groups.set(ranks, g);
    }
    g.push(k);
  }
  const itemsByBucket: PlanItem[][] = [];
  const ranksByBucket: (readonly number[])[] = [];
  let totalBytes = 0;
  for (const [ranks, members] of groups) {
    const sizes = new Float64Array(members.length);
    for (let m = 0; m < members.length; m++) sizes[m] = (pending[members[m] as number] as PendingItem).nbytes;
    const { placements, buckets: count } = packFirstFitDecreasing(sizes, bucketBytes, alignment);
    const first = itemsByBucket.length;
    for (let b = 0; b < count; b++) {
      itemsByBucket.push([]);
      ranksByBucket.push(ranks);
    }
    for (let m = 0; m < members.length; m++) {
      const p = pending[members[m] as number] as PendingItem;
      const place = placements[m] as { bucket: number; offset: number };
      const i = p.entry;
      const tensor = nc.tensor.get(i);
      const shardRank = nc.shard_rank[i] as number;
      const dtype = nc.dtype[i] as number;
      const fileOffset = (nc.file_offset[i] as number) + (p.part?.tensor_offset ?? 0);
      // Keys in canonical (sorted) order, so JSON.stringify(item) is the item's canonical JSON:
      // the digest and the writer use the native serializer (see plan-digest.ts).
      const item: PlanItem = p.part
        ? {
            dtype: dtype < 0 ? null : (next.dtypes[dtype] as string),
            file_offset: fileOffset,
            hash: next.hashOf(i),
            key: `${tensor}:${shardRank}`,
            kind: next.kindOf(i),
            nbytes: p.nbytes,
            offset: place.offset,
            part: p.part,
            shape: next.shapeOf(i),
            shard_rank: shardRank,
            tensor,
            uri: (next.files[nc.file[i] as number] as ManifestFile).path,
          }
        : {
            dtype: dtype < 0 ? null : (next.dtypes[dtype] as string),
            file_offset: fileOffset,
            hash: next.hashOf(i),
            key: `${tensor}:${shardRank}`,
            kind: next.kindOf(i),
            nbytes: p.nbytes,
            offset: place.offset,
            shape: next.shapeOf(i),
            shard_rank: shardRank,
            tensor,
            uri: (next.files[nc.file[i] as number] as ManifestFile).path,
          };
      totalBytes += p.nbytes;
      (itemsByBucket[first + place.bucket] as PlanItem[]).push(item);
    }
  }
  const buckets: PlanBucket[] = itemsByBucket.map((items, b) => {
    items.sort((x, y) => x.offset - y.offset);
    let size = 0;
    for (const it of items) size = Math.max(size, it.offset + it.nbytes);
    return {
      bucket_id: b,
      size,
      consumer_ranks: [...(ranksByBucket[b] as readonly number[])],
      items,
    };
  });

  const body: Omit<Plan, 'digest'> = {
    schema: PLAN_SCHEMA,
    plan_version: PLAN_VERSION,
    version: next.version,
    prev_version: prev?.version ?? null,
    model_id: next.model_id,
    created_at: options.createdAt ?? new Date().toISOString(),
    hash_algo: next.hash_algo,
    source: { root: resolve(options.checkpointRoot), rank: sourceRank },
    next_manifest: {
      digest: next.digest,
      path: options.nextManifestPath === null ? null : resolve(options.nextManifestPath),
    },
    bucket_bytes: bucketBytes,
    alignment,
    total_bytes: totalBytes,
    checkpoint_bytes: next.total_bytes,
    world_size: worldSize,
    buckets,
    removed,
  };
  return { ...body, digest: planDigest(body, { canonicalItems: true }) };
}
