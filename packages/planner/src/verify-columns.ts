/**
 * verifyPlan's item checks for a plan createPlan made, read from its columns (planned-items.ts):
 * the same checks, findings and messages as on PlanItem objects, without building a million of
 * them. Used only when every bucket is a createPlan bucket over one manifest; any other plan (or a
 * copy whose buckets were rebuilt) is checked item object by item object.
 */
import type { Plan } from '@hotweights/core';
import { type ConsumerCheckOptions, checkConsumers, type ItemShards } from './consumer-checks.js';
import type { Findings } from './findings.js';
import { type BucketSource, bucketSource, type ItemWriter, type PlannedItems } from './planned-items.js';

/** Each bucket's columns, when all buckets have them and share one manifest; else null. */
export function columnSources(plan: Plan): BucketSource[] | null {
  const out: BucketSource[] = [];
  let writer: ItemWriter | undefined;
  for (const b of plan.buckets) {
    const s = bucketSource(b);
    if (!s || (writer && s.writer !== writer)) return null;
    writer = s.writer;
    out.push(s);
  }
  return out;
}

export interface ColumnCheckOptions extends ConsumerCheckOptions {
  readonly trusted?: boolean;
}

/** Positions 0..n-1 of a bucket's items in (offset, nbytes) order: usually already so. */
function placementOrder(items: PlannedItems): Uint32Array | null {
  const o = items.offset;
  const n = items.nbytes;
  for (let k = 1; k < items.length; k++) {
    const d = (o[k] as number) - (o[k - 1] as number) || (n[k] as number) - (n[k - 1] as number);
    if (d < 0) {
      const order = new Uint32Array(items.length);
      for (let i = 0; i < order.length; i++) order[i] = i;
      return order.sort((x, y) => (o[x] as number) - (o[y] as number) || (n[x] as number) - (n[y] as number));
    }
  }
  return null;
}

function shardsOf(s: BucketSource): ItemShards {
  const c = s.writer.manifest.columns;
  const entry = s.items.entry;
  return {
    length: s.items.length,
    isFile: (k) => c.kind.charCodeAt(entry[k] as number) === 0x66, // 'f'
    shardRank: (k) => c.shard_rank[entry[k] as number] as number,
    key: (k) => s.writer.key(s.items, k),
  };
}

/** A split item: which bucket's columns, which position. */
interface PartRef {
  readonly s: BucketSource;
  readonly k: number;
}

/** The item checks of verifyPlan over columns; returns the sum of item sizes. */
export function checkItemColumns(
  f: Findings,
  plan: Plan,
  sources: readonly BucketSource[],
  worldSize: number | null,
  options: ColumnCheckOptions,
  allGroupRanks: Set<number> | null,
): number {
  const writer = sources[0]?.writer;
  if (!writer) return 0;
  const m = writer.manifest;
  // Keys are unique in the manifest (createPlan checked), so an entry index stands for its key.
  const removed = new Set<number>();
  for (const key of plan.removed) {
    const e = m.indexOf(key);
    if (e >= 0) removed.add(e);
  }
  const whole = options.trusted ? null : new Uint8Array(m.size);
  const parts = new Map<number, PartRef[]>();
  const alignment = plan.alignment;
  let total = 0;
  for (const [bi, b] of plan.buckets.entries()) {
    const s = sources[bi] as BucketSource;
    const items = s.items;
    const id = b.bucket_id;
    if (b.size > plan.bucket_bytes)
      f.add(true, {
        check: 'bucket-size',
        bucket_id: id,
        message: `bucket ${id} is ${b.size} bytes, over bucket_bytes ${plan.bucket_bytes}`,
      });
    const order = placementOrder(items);
    let end = 0;
    let maxEnd = 0;
    for (let o = 0; o < items.length; o++) {
      const k = order ? (order[o] as number) : o;
      const e = items.entry[k] as number;
      const offset = items.offset[k] as number;
      const nbytes = items.nbytes[k] as number;
      total += nbytes;
      if (offset % alignment !== 0)
        f.add(true, {
          check: 'alignment',
          bucket_id: id,
          message: `bucket ${id}: item ${s.writer.key(items, k)} at offset ${offset} is not aligned to ${alignment}`,
        });
      if (offset < end)
        f.add(true, {
          check: 'overlap',
          bucket_id: id,
          message: `bucket ${id}: item ${s.writer.key(items, k)} at offset ${offset} overlaps the previous item (ends at ${end})`,
        });
      if (offset + nbytes > b.size)
        f.add(true, {
          check: 'item-outside-bucket',
          bucket_id: id,
          message: `bucket ${id}: item ${s.writer.key(items, k)} ends at ${offset + nbytes}, past the bucket size ${b.size}`,
        });
      if (offset + nbytes > end) end = offset + nbytes;
      if (offset + nbytes > maxEnd) maxEnd = offset + nbytes;
      if (!s.writer.uriConfined(items, k))
        f.add(true, {
          check: 'path',
          bucket_id: id,
          message: `bucket ${id}: item ${s.writer.key(items, k)} has uri ${JSON.stringify(s.writer.uriOf(items, k))} outside the checkpoint root`,
        });
      if (removed.size > 0 && removed.has(e))
        f.add(true, {
          check: 'removed',
          bucket_id: id,
          message: `item ${s.writer.key(items, k)} is both planned and listed as removed`,
        });
      if ((items.part[k] as number) >= 0) {
        let list = parts.get(e);
        if (!list) {
          list = [];
          parts.set(e, list);
        }
        list.push({ s, k });
      } else if (whole) {
        if (whole[e])
          f.add(true, {
            check: 'duplicate-key',
            bucket_id: id,
            message: `item ${s.writer.key(items, k)} is planned twice`,
          });
        whole[e] = 1;
      }
    }
    if (items.length > 0 && maxEnd !== b.size)
      f.add(true, {
        check: 'bucket-size',
        bucket_id: id,
        message: `bucket ${id}: size ${b.size} is not the end of its last item (${maxEnd})`,
      });
    checkConsumers(f, b, shardsOf(s), worldSize, options, allGroupRanks);
  }
  checkPartColumns(f, m.key.bind(m), m.columns.nbytes, writer.bucketBytes, parts);
  if (whole)
    for (const e of parts.keys())
      if (whole[e])
        f.add(true, { check: 'duplicate-key', message: `item ${m.key(e)} is planned both whole and split` });
  return total;
}

/**
 * Split parts of each tensor: indexes 0..count-1 once each, contiguous from 0, adding up to the
 * tensor's size. A part's hash, tensor_nbytes, count and file_offset are derived from its entry
 * and index (see ItemWriter), so equal entries give equal hashes and sizes by construction.
 */
function checkPartColumns(
  f: Findings,
  keyOf: (e: number) => string,
  tensorNbytes: Float64Array,
  bucketBytes: number,
  parts: Map<number, PartRef[]>,
): void {
  for (const [e, list] of parts) {
    const part = (r: PartRef) => r.s.items.part[r.k] as number;
    list.sort((a, b) => part(a) - part(b));
    const nbytes = tensorNbytes[e] as number;
    const count = Math.ceil(nbytes / bucketBytes);
    let offset = 0;
    let ok = list.length === count;
    for (const [i, r] of list.entries()) {
      const p = part(r);
      // tensor_offset and file_offset follow from the index: both are p * bucketBytes past the start.
      if (p !== i || p * bucketBytes !== offset) ok = false;
      offset += r.s.items.nbytes[r.k] as number;
    }
    if (offset !== nbytes) ok = false;
    if (!ok)
      f.add(true, {
        check: 'parts',
        message: `split tensor ${keyOf(e)}: parts must be indexes 0..count-1 once each, contiguous, with one hash, adding up to tensor_nbytes`,
      });
  }
}
