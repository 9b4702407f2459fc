/**
 * Builds real plans for tests without the planner: whole-file items (split into parts when a
 * file is larger than a bucket), hashed with core's hashItem, packed in order, digest computed.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Plan, PlanBucket, PlanItem } from '@hotweights/core';
import { computePlanDigest, type HashAlgorithm, hashItem } from '@hotweights/manifest';

export function writeCheckpoint(
  root: string,
  files: Record<string, number | Uint8Array>,
): Record<string, Buffer> {
  const out: Record<string, Buffer> = {};
  for (const [name, spec] of Object.entries(files)) {
    const bytes = typeof spec === 'number' ? randomBytes(spec) : Buffer.from(spec);
    mkdirSync(dirname(join(root, name)), { recursive: true });
    writeFileSync(join(root, name), bytes);
    out[name] = bytes;
  }
  return out;
}

export interface FixturePlanOptions {
  readonly version?: string;
  readonly bucketBytes?: number;
  readonly consumers?: (bucketIndex: number) => number[];
  readonly hash?: HashAlgorithm;
  readonly sourceRank?: number;
}

export function makePlan(
  root: string,
  files: Record<string, Buffer>,
  options: FixturePlanOptions = {},
): Plan {
  const bucketBytes = options.bucketBytes ?? 64 * 1024;
  const algo = options.hash ?? 'blake3';
  const align = 64;
  const buckets: { size: number; items: PlanItem[] }[] = [];
  let current: { size: number; items: PlanItem[] } = { size: 0, items: [] };
  const push = (item: Omit<PlanItem, 'offset'>) => {
    let offset = Math.ceil(current.size / align) * align;
    if (current.items.length > 0 && offset + item.nbytes > bucketBytes) {
      buckets.push(current);
      current = { size: 0, items: [] };
      offset = 0;
    }
    current.items.push({ ...item, offset });
    current.size = offset + item.nbytes;
  };
  let total = 0;
  for (const [uri, bytes] of Object.entries(files)) {
    const hash = hashItem(algo, [bytes]);
    total += bytes.length;
    const count = Math.max(1, Math.ceil(bytes.length / bucketBytes));
    for (let i = 0; i < count; i++) {
      const start = i * bucketBytes;
      const nbytes = Math.min(bucketBytes, bytes.length - start);
      push({
        key: `${uri}:0`,
        tensor: uri,
        shard_rank: 0,
        kind: 'file',
        nbytes,
        hash,
        uri,
        file_offset: start,
        dtype: null,
        shape: null,
        ...(count > 1
          ? { part: { index: i, count, tensor_offset: start, tensor_nbytes: bytes.length } }
          : {}),
      });
    }
  }
  if (current.items.length > 0) buckets.push(current);
  const planBuckets: PlanBucket[] = buckets.map((b, i) => ({
    bucket_id: i,
    size: b.size,
    consumer_ranks: options.consumers?.(i) ?? [0],
    items: b.items,
  }));
  const plan: Omit<Plan, 'digest'> = {
    schema: 'hotweights.plan',
    plan_version: 1,
    version: options.version ?? 'v1',
    prev_version: null,
    model_id: null,
    created_at: new Date(0).toISOString(),
    hash_algo: algo,
    source: { root, rank: options.sourceRank ?? 0 },
    next_manifest: { digest: 'sha256:none', path: null },
    bucket_bytes: bucketBytes,
    alignment: align,
    total_bytes: total,
    checkpoint_bytes: total,
    world_size: null,
    buckets: planBuckets,
    removed: [],
  };
  return { ...plan, digest: computePlanDigest(plan) };
}
