/** Small valid plans for tests, digested the way core computes it. */

import type { Plan, PlanBucket } from '@hotweights/core';
import { computePlanDigest } from '@hotweights/manifest';

export function makePlan(args: {
  version: string;
  prev?: string | null;
  buckets: Array<{ id: number; consumers: number[] }>;
  worldSize?: number | null;
}): Plan {
  const buckets: PlanBucket[] = args.buckets.map((b) => ({
    bucket_id: b.id,
    size: 8,
    consumer_ranks: b.consumers,
    items: [
      {
        key: `t${b.id}:0`,
        tensor: `t${b.id}`,
        shard_rank: 0,
        kind: 'file',
        nbytes: 8,
        hash: `sha256:${String(b.id).padStart(64, '0')}`,
        uri: `f${b.id}.bin`,
        file_offset: 0,
        dtype: null,
        shape: null,
        offset: 0,
      },
    ],
  }));
  const body: Omit<Plan, 'digest'> = {
    schema: 'hotweights.plan',
    plan_version: 1,
    version: args.version,
    prev_version: args.prev ?? null,
    model_id: null,
    created_at: '2026-01-01T00:00:00.000Z',
    hash_algo: 'sha256',
    source: { root: '/tmp/none', rank: 0 },
    next_manifest: { digest: 'sha256:00', path: null },
    bucket_bytes: 64,
    alignment: 8,
    total_bytes: buckets.length * 8,
    checkpoint_bytes: buckets.length * 8,
    world_size: args.worldSize ?? null,
    buckets,
    removed: [],
  };
  return { ...body, digest: computePlanDigest(body) };
}
