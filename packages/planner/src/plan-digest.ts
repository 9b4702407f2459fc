/**
 * The plan digest, computed exactly as core's computePlanDigest (sha256 of the canonical JSON
 * without `digest`) but streamed into the hash item by item with the key order written out, so a
 * million-item plan neither builds one huge string nor sorts keys a million times. A test checks
 * both agree.
 */
import { createHash, type Hash } from 'node:crypto';
import { canonicalJson, type Plan, type PlanBucket, type PlanItem } from '@hotweights/core';

const s = JSON.stringify;

/** Printable ASCII without `"` and `\\`: JSON.stringify would only add the quotes. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

/** JSON.stringify(v) for a string, skipping the call for the common plain case (it is hot). */
function str(v: string): string {
  return PLAIN.test(v) ? `"${v}"` : s(v);
}

function shapeJson(shape: readonly number[] | null): string {
  return shape === null ? 'null' : `[${shape.join(',')}]`;
}

function itemJson(it: PlanItem): string {
  const part = it.part
    ? `"part":{"count":${it.part.count},"index":${it.part.index},"tensor_nbytes":${it.part.tensor_nbytes},"tensor_offset":${it.part.tensor_offset}},`
    : '';
  return (
    `{"dtype":${it.dtype === null ? 'null' : str(it.dtype)},"file_offset":${it.file_offset},"hash":${str(it.hash)},` +
    `"key":${str(it.key)},"kind":${str(it.kind)},"nbytes":${it.nbytes},"offset":${it.offset},${part}` +
    `"shape":${shapeJson(it.shape)},"shard_rank":${it.shard_rank},"tensor":${str(it.tensor)},"uri":${str(it.uri)}}`
  );
}

function hashBuckets(h: Hash, buckets: readonly PlanBucket[], canonicalItems: boolean): void {
  h.update('[');
  for (const [b, bucket] of buckets.entries()) {
    h.update(
      `${b ? ',' : ''}{"bucket_id":${bucket.bucket_id},"consumer_ranks":${s(bucket.consumer_ranks)},"items":[`,
    );
    let batch = '';
    for (const [i, it] of bucket.items.entries()) {
      let json: string;
      if (canonicalItems) {
        json = JSON.stringify(it);
        itemJsonCache.set(it, json);
      } else json = itemJson(it);
      batch += (i ? ',' : '') + json;
      if (batch.length > 1 << 20) {
        h.update(batch);
        batch = '';
      }
    }
    h.update(`${batch}],"size":${bucket.size}}`);
  }
  h.update(']');
}

/**
 * Items' JSON text from digesting a plan built with canonicalItems: writePlan writes the same
 * text, so a large plan is serialised once, not twice. Weak: it goes away with the plan.
 */
const itemJsonCache = new WeakMap<PlanItem, string>();

/** JSON.stringify(item), reusing the text made while digesting when there is one. */
export function itemJsonText(item: PlanItem): string {
  return itemJsonCache.get(item) ?? JSON.stringify(item);
}

export interface PlanDigestOptions {
  /**
   * The caller built every item (and part) with its keys in sorted order and no undefined
   * values, so JSON.stringify(item) is already canonical (createPlan does; about twice as fast).
   */
  readonly canonicalItems?: boolean;
}

/** `sha256:<hex>`, equal to core's computePlanDigest(plan). */
export function planDigest(plan: Omit<Plan, 'digest'> | Plan, options: PlanDigestOptions = {}): string {
  const h = createHash('sha256');
  const obj = plan as unknown as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => k !== 'digest' && obj[k] !== undefined)
    .sort();
  h.update('{');
  for (const [n, k] of keys.entries()) {
    h.update(`${n ? ',' : ''}${s(k)}:`);
    if (k === 'buckets') hashBuckets(h, plan.buckets, options.canonicalItems === true);
    else h.update(canonicalJson(obj[k]));
  }
  h.update('}');
  return `sha256:${h.digest('hex')}`;
}
