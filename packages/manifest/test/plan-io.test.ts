import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Plan, SchemaError } from '@hotweights/core';
import { computePlanDigest, loadPlan, parsePlan, validatePlan } from '@hotweights/manifest';
import { describe, expect, it } from 'vitest';

function samplePlan(): Plan {
  const body: Omit<Plan, 'digest'> = {
    schema: 'hotweights.plan',
    plan_version: 1,
    version: 'v1',
    prev_version: 'v0',
    model_id: null,
    created_at: '2026-11-23T00:00:00.000Z',
    hash_algo: 'blake3',
    source: { root: '/ckpt', rank: 0 },
    next_manifest: { digest: 'sha256:00', path: null },
    bucket_bytes: 1024,
    alignment: 64,
    total_bytes: 100,
    checkpoint_bytes: 500,
    world_size: 2,
    removed: [],
    buckets: [
      {
        bucket_id: 0,
        size: 100,
        consumer_ranks: [0, 1],
        items: [
          {
            key: 'w:0',
            tensor: 'w',
            shard_rank: 0,
            kind: 'tensor',
            nbytes: 100,
            hash: 'blake3:ab',
            uri: 'model.safetensors',
            file_offset: 64,
            dtype: 'F32',
            shape: [25],
            offset: 0,
          },
        ],
      },
    ],
  };
  return { ...body, digest: computePlanDigest(body) };
}

describe('plan loading', () => {
  it('round-trips a valid plan and checks its digest', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-plan-'));
    try {
      const plan = samplePlan();
      writeFileSync(join(dir, 'plan.json'), JSON.stringify(plan));
      expect(await loadPlan(join(dir, 'plan.json'))).toEqual(plan);

      const tampered = { ...plan, total_bytes: 99 };
      writeFileSync(join(dir, 'bad.json'), JSON.stringify(tampered));
      await expect(loadPlan(join(dir, 'bad.json'))).rejects.toThrowError(
        /bad\.json: digest: expected sha256:/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('names file, field and expectation for schema violations', () => {
    const plan = samplePlan() as unknown as Record<string, unknown>;
    const bad = structuredClone(plan) as { buckets: { items: { nbytes: unknown }[] }[] };
    bad.buckets[0]!.items[0]!.nbytes = -5;
    expect(() => validatePlan(bad, 'p.json')).toThrowError(
      'p.json: buckets[0].items[0].nbytes: expected an integer >= 0 (got -5)',
    );
    expect(() => parsePlan('{not json', 'p.json')).toThrowError(/p\.json: \(root\): expected valid JSON/);
    expect(() => validatePlan({ ...plan, plan_version: 3 }, 'p.json')).toThrowError(
      /plan_version: expected one of 1, 2/,
    );
    // A patch item only in a version 2 plan (old plans still load as version 1).
    const patched = structuredClone(plan) as { buckets: { items: Record<string, unknown>[] }[] };
    const item = patched.buckets[0]!.items[0]!;
    item.patch = {
      encoding: 'xor-brotli',
      base_hash: item.hash,
      hash: item.hash,
      file_offset: 0,
      tensor_nbytes: item.nbytes,
    };
    expect(() => validatePlan(patched, 'p.json')).toThrowError(
      /items\[0\]\.patch: expected no patch in a plan_version 1 plan/,
    );
    expect(() => validatePlan({ ...patched, plan_version: 2 }, 'p.json')).toThrowError(
      /patches: expected the patch file/,
    );
    const v2 = validatePlan(
      { ...patched, plan_version: 2, patches: { path: '/x.patches', bytes: 10 } },
      'p.json',
    );
    expect(v2.plan_version).toBe(2);
    expect(v2.buckets[0]!.items[0]!.patch).toMatchObject({ encoding: 'xor-brotli', file_offset: 0 });
  });

  it('rejects paths that escape the checkpoint root', () => {
    for (const uri of ['../etc/passwd', '/etc/passwd', 'a/../../b', 'a//b', '']) {
      const bad = structuredClone(samplePlan()) as unknown as { buckets: { items: { uri: string }[] }[] };
      bad.buckets[0]!.items[0]!.uri = uri;
      expect(() => validatePlan(bad, 'p.json')).toThrowError(SchemaError);
    }
  });

  it('rejects items that end past their bucket and duplicate bucket ids', () => {
    const bad = structuredClone(samplePlan()) as unknown as {
      buckets: { size: number; bucket_id: number }[];
    };
    bad.buckets[0]!.size = 50;
    expect(() => validatePlan(bad)).toThrowError(
      /items\[0\]\.offset: expected item to end inside the bucket/,
    );
    const dup = structuredClone(samplePlan()) as unknown as { buckets: unknown[] };
    dup.buckets.push(structuredClone(dup.buckets[0]));
    expect(() => validatePlan(dup)).toThrowError(/buckets\[1\]\.bucket_id: expected a bucket_id not used/);
  });
});
