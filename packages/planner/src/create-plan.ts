/**
 * createPlan: the delta between two manifests, packed into buckets.
 *
 * Delta on (tensor, shard_rank) and hash: entries of `next` that are new or whose hash or size
 * changed are planned; keys only in `prev` are reported in `removed`. A tensor larger than a
 * bucket is split into byte-range parts of at most one bucket each. Items are packed first-fit
 * decreasing with aligned offsets; each bucket's consumers are the union of its items' consumers.
 */
import { Buffer } from 'node:buffer';
import { resolve } from 'node:path';
import {
  ConfigError,
  type Manifest,
  PLAN_SCHEMA,
  PLAN_VERSION,
  PLAN_VERSION_PATCHES,
  type Plan,
  type PlanBucket,
  type PlanItem,
  type PlanItemPatch,
} from '@hotweights/core';
import { type ColumnarManifest, toColumnar } from '@hotweights/manifest';
import { type ConsumerOptions, consumerResolver } from './consumers.js';
import { unchangedEntries } from './delta.js';
import { type PackedItems, packFirstFitDecreasingInto } from './packing.js';
import type { WrittenPatches } from './patches.js';
import { encodePlan, rememberEncoding } from './plan-text.js';
import { ItemWriter, PlannedItems, plannedBucket } from './planned-items.js';

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
  /**
   * Patches against `prev` (writePatches): a changed tensor with one moves as its patch, and the
   * plan is a plan_version 2 plan naming the patch file.
   */
  readonly patches?: WrittenPatches;
}

/**
 * For each entry of `next`, the index of the entry with the same key in `prev`, or -1. Usually
 * entry i of prev is the same tensor as entry i of next (same layout, new values): one string
 * comparison of the name columns settles that. Otherwise two manifests that carry key orders
 * (binary ones) are merge-joined along them; anything else goes through prev's key index. No key
 * string is built on any path.
 */
function matchEntries(prev: ColumnarManifest, next: ColumnarManifest): Int32Array {
  const match = new Int32Array(next.size).fill(-1);
  const pc = prev.columns;
  const nc = next.columns;
  const ranks = (a: Uint32Array) => Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (pc.tensor.sameAs(nc.tensor) && ranks(pc.shard_rank).equals(ranks(nc.shard_rank))) {
    for (let i = 0; i < next.size; i++) match[i] = i;
    return match;
  }
  const po = prev.keyOrder();
  const no = next.keyOrder();
  if (po && no) {
    let a = 0;
    let b = 0;
    while (a < po.length && b < no.length) {
      const j = po[a] as number;
      const i = no[b] as number;
      const c = next.compareKeys(i, prev, j);
      if (c === 0) {
        match[i] = j;
        a++;
        b++;
      } else if (c < 0) b++;
      else a++;
    }
    return match;
  }
  for (let i = 0; i < next.size; i++) {
    const sr = nc.shard_rank[i] as number;
    match[i] =
      i < prev.size && pc.shard_rank[i] === sr && pc.tensor.equals(i, nc.tensor, i)
        ? i
        : prev.indexOfTensor(nc.tensor.get(i), sr);
  }
  return match;
}

/** Items to place, as parallel typed columns (no object per item until the plan is built). */
class Pending {
  entry = new Uint32Array(1024);
  size = new Float64Array(1024);
  /** Part number of a split tensor, or -1 for a whole entry. */
  part = new Int32Array(1024);
  length = 0;

  push(entry: number, size: number, part: number): void {
    if (this.length === this.entry.length) {
      const grow = <T extends Uint32Array | Float64Array | Int32Array>(a: T): T => {
        const b = new (a.constructor as new (n: number) => T)(a.length * 2);
        b.set(a);
        return b;
      };
      this.entry = grow(this.entry);
      this.size = grow(this.size);
      this.part = grow(this.part);
    }
    this.entry[this.length] = entry;
    this.size[this.length] = size;
    this.part[this.length] = part;
    this.length++;
  }
}

/**
 * A group's packed items written into their buckets' windows on `all` (slots[b]: the next free
 * place of the group's bucket b), in placement order, so offsets ascend inside each bucket and no
 * per-bucket sort is needed. Returns the bytes placed.
 */
function placeGroup(
  all: PlannedItems,
  slots: Uint32Array,
  packed: PackedItems,
  members: ArrayLike<number>,
  pending: Pending,
): number {
  const { entry, part, offset, nbytes } = all;
  let total = 0;
  for (let o = 0; o < packed.order.length; o++) {
    const m = packed.order[o] as number;
    const k = members[m] as number;
    const b = packed.bucket[m] as number;
    const slot = slots[b] as number;
    slots[b] = slot + 1;
    const size = pending.size[k] as number;
    total += size;
    entry[slot] = pending.entry[k] as number;
    part[slot] = pending.part[k] as number;
    offset[slot] = packed.offset[m] as number;
    nbytes[slot] = size;
  }
  return total;
}

/** Planned keys that exist in prev (changed) and that do not (added), per plan createPlan made. */
const deltaCounts = new WeakMap<Plan, { readonly changed: number; readonly added: number }>();

/**
 * How many planned keys changed and how many were added, for a plan createPlan made (undefined
 * for any other plan object): what a summary would otherwise look up key by key.
 */
export function planDeltaCounts(
  plan: Plan,
): { readonly changed: number; readonly added: number } | undefined {
  return deltaCounts.get(plan);
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

  // Delta: changed or added entries of next are planned; unmatched entries of prev are removed.
  const nc = next.columns;
  const pending = new Pending();
  let maxShard = 0;
  const match = prev ? matchEntries(prev, next) : null;
  const prevMatched = prev ? new Uint8Array(prev.size) : null;
  const unchanged =
    prev && match && prevMatched ? unchangedEntries(prev, next, match, prevMatched) : undefined;
  let changed = 0;
  let added = 0;
  const patchOf = options.patches?.patches;
  const patched = new Map<number, PlanItemPatch>();
  for (let i = 0; i < next.size; i++) {
    const sr = nc.shard_rank[i] as number;
    if (sr > maxShard) maxShard = sr;
    if (unchanged?.[i]) continue;
    const nbytes = nc.nbytes[i] as number;
    if (match && (match[i] as number) >= 0) {
      changed++;
      const p = patchOf && patchOf.size > 0 ? patchOf.get(next.key(i)) : undefined;
      if (p && p.nbytes <= bucketBytes) {
        patched.set(i, p.patch);
        pending.push(i, p.nbytes, -1);
        continue;
      }
    } else added++;
    if (nbytes <= bucketBytes) {
      pending.push(i, nbytes, -1);
      continue;
    }
    // Larger than a bucket: byte-range parts of at most one bucket each.
    const count = Math.ceil(nbytes / bucketBytes);
    for (let p = 0; p < count; p++) pending.push(i, Math.min(bucketBytes, nbytes - p * bucketBytes), p);
  }
  const removed: string[] = [];
  if (prev && prevMatched) {
    for (let j = 0; j < prev.size; j++) if (!prevMatched[j]) removed.push(prev.key(j));
    removed.sort();
  }

  // Packing: items are grouped by consumer set first, so a bucket only goes to ranks that need
  // all of it (TP-scoped buckets); groups are packed in order of first appearance.
  const consumerOptions = options.consumers ?? {};
  const consumersOf = consumerResolver(consumerOptions, worldSize, maxShard + 1);
  // Only group-map patterns look at names: otherwise no name is sliced here.
  const byName = (consumerOptions.groupMap?.length ?? 0) > 0;
  const groups = new Map<readonly number[], ArrayLike<number>>();
  // Every item to the same ranks (the default): one group, asked nothing per item.
  let everyItem: Uint32Array | undefined;
  if (consumersOf.uniform && pending.length > 0) {
    everyItem = new Uint32Array(pending.length);
    for (let k = 0; k < everyItem.length; k++) everyItem[k] = k;
    groups.set(consumersOf.uniform, everyItem);
  }
  for (let k = 0; !consumersOf.uniform && k < pending.length; k++) {
    const e = pending.entry[k] as number;
    const ranks = consumersOf(byName ? nc.tensor.get(e) : '', nc.shard_rank[e] as number, next.kindOf(e));
    let g = groups.get(ranks) as number[] | undefined;
    if (!g) {
      g = [];
      groups.set(ranks, g);
    }
    g.push(k);
  }
  const writer = new ItemWriter(next, bucketBytes);
  // Every bucket's items are a window on one set of columns, in bucket order (see ItemBatch).
  const allItems = new PlannedItems(pending.length);
  let windowStart = 0;
  const itemsByBucket: PlannedItems[] = [];
  const ranksByBucket: (readonly number[])[] = [];
  let totalBytes = 0;
  for (const [ranks, members] of groups) {
    // The one group of every item packs the pending sizes as they are.
    let sizes = pending.size.subarray(0, members.length);
    if (members !== everyItem) {
      sizes = new Float64Array(members.length);
      for (let m = 0; m < members.length; m++) sizes[m] = pending.size[members[m] as number] as number;
    }
    const packed = packFirstFitDecreasingInto(sizes, bucketBytes, alignment);
    const perBucket = new Uint32Array(packed.buckets);
    for (let m = 0; m < members.length; m++) {
      const b = packed.bucket[m] as number;
      perBucket[b] = (perBucket[b] as number) + 1;
    }
    const slots = new Uint32Array(packed.buckets);
    for (let b = 0; b < packed.buckets; b++) {
      const count = perBucket[b] as number;
      const window = PlannedItems.window(allItems, windowStart, count);
      window.length = count;
      itemsByBucket.push(window);
      slots[b] = windowStart;
      windowStart += count;
      ranksByBucket.push(ranks);
    }
    totalBytes += placeGroup(allItems, slots, packed, members, pending);
  }
  // Items stay columns (see planned-items.ts): objects are built only if someone reads them.
  const buckets: PlanBucket[] = itemsByBucket.map((items, b) => {
    let size = 0;
    for (let k = 0; k < items.length; k++)
      size = Math.max(size, (items.offset[k] as number) + (items.nbytes[k] as number));
    const consumers = [...(ranksByBucket[b] as readonly number[])];
    if (patched.size === 0) return plannedBucket(b, size, consumers, { items, writer });
    // A plan with patches is written item object by item object (patch plans are per tensor,
    // thousands of items, not the million-entry case the columns are for).
    const list: PlanItem[] = [];
    for (let k = 0; k < items.length; k++) {
      const item = writer.item(items, k);
      const patch = patched.get(items.entry[k] as number);
      list.push(patch ? { ...item, patch } : item);
    }
    return { bucket_id: b, size, consumer_ranks: consumers, items: list };
  });

  const body: Omit<Plan, 'digest'> = {
    schema: PLAN_SCHEMA,
    plan_version: patched.size > 0 ? PLAN_VERSION_PATCHES : PLAN_VERSION,
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
    ...(patched.size > 0 && options.patches ? { patches: options.patches.file } : {}),
  };
  const encoded = encodePlan(body, { trusted: patched.size === 0 });
  const plan: Plan = { ...body, digest: encoded.digest };
  rememberEncoding(plan, encoded);
  deltaCounts.set(plan, { changed, added });
  return plan;
}
