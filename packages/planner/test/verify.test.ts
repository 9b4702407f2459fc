import { buildManifest, computePlanDigest, type ManifestEntry, type Plan } from '@hotweights/core';
import { createPlan, planDigest, verifyPlan } from '@hotweights/planner';
import { describe, expect, it } from 'vitest';

function splitPlan(): Plan {
  const entries: ManifestEntry[] = [
    {
      key: 'big.bin:0',
      tensor: 'big.bin',
      shard_rank: 0,
      kind: 'file',
      file: 'big.bin',
      file_offset: 0,
      nbytes: 3000,
      dtype: null,
      shape: null,
      hash: `blake3:${'a'.repeat(64)}`,
    },
    {
      key: 'small.bin:0',
      tensor: 'small.bin',
      shard_rank: 0,
      kind: 'file',
      file: 'small.bin',
      file_offset: 0,
      nbytes: 10,
      dtype: null,
      shape: [1, 2],
      hash: `blake3:${'b'.repeat(64)}`,
    },
  ];
  const next = buildManifest(
    {
      version: 'v1',
      model_id: 'm',
      created_at: 'now',
      hash_algo: 'blake3',
      files: [
        { path: 'big.bin', size: 3000, kind: 'file' },
        { path: 'small.bin', size: 10, kind: 'file' },
      ],
    },
    entries.map((e) => ({ ...e, shape: null })),
  );
  return createPlan({
    prev: null,
    next,
    checkpointRoot: '/ck',
    nextManifestPath: '/m.json',
    bucketBytes: 1024,
    worldSize: 2,
  });
}

describe('verifyPlan', () => {
  it('computes the same digest as core, item order and parts included', () => {
    const plan = splitPlan();
    expect(planDigest(plan)).toBe(computePlanDigest(plan));
    expect(plan.digest).toBe(computePlanDigest(plan));
    expect(verifyPlan(plan)).toEqual({ ok: true, problems: [], warnings: [] });
  });

  it('computes the same digest as core for names that JSON must escape', () => {
    const names = [
      'quote"d',
      'back\\slash',
      'ünïcode',
      'ctl\u0001',
      'line\u2028sep',
      'tab\tx',
      'plain.weight',
    ];
    const entries: ManifestEntry[] = [
      {
        key: 'odd file ü.safetensors:0',
        tensor: 'odd file ü.safetensors',
        shard_rank: 0,
        kind: 'header',
        file: 'odd file ü.safetensors',
        file_offset: 0,
        nbytes: 8,
        dtype: null,
        shape: null,
        hash: `blake3:${'c'.repeat(64)}`,
      },
      ...names.map(
        (t, i): ManifestEntry => ({
          key: `${t}:0`,
          tensor: t,
          shard_rank: 0,
          kind: 'tensor',
          file: 'odd file ü.safetensors',
          file_offset: 8 + i * 4,
          nbytes: 4,
          dtype: 'F32',
          shape: [1],
          hash: `blake3:${String(i).repeat(64)}`,
        }),
      ),
    ];
    const next = buildManifest(
      {
        version: 'v"1',
        model_id: null,
        created_at: 'now',
        hash_algo: 'blake3',
        files: [{ path: 'odd file ü.safetensors', size: 8 + names.length * 4, kind: 'safetensors' }],
      },
      entries,
    );
    const plan = createPlan({
      prev: null,
      next,
      checkpointRoot: '/ck',
      nextManifestPath: null,
      bucketBytes: 1024,
    });
    expect(plan.digest).toBe(computePlanDigest(plan));
  });

  it('finds incomplete or inconsistent split parts', () => {
    const plan = splitPlan();
    const buckets = plan.buckets.map((b) => ({ ...b, items: b.items.filter((i) => i.part?.index !== 1) }));
    const broken = {
      ...plan,
      buckets,
      total_bytes: buckets.reduce((s, b) => s + b.items.reduce((t, i) => t + i.nbytes, 0), 0),
    };
    const report = verifyPlan({ ...broken, digest: planDigest(broken) });
    expect(report.ok).toBe(false);
    expect(report.problems.map((p) => p.check)).toContain('parts');
    expect(report.problems.find((p) => p.check === 'parts')?.message).toMatch(/split tensor big\.bin:0/);
  });

  it('caps repeated findings so a broken large plan stays readable', () => {
    const plan = splitPlan();
    const many = {
      ...plan,
      buckets: Array.from({ length: 50 }, (_, i) => ({
        bucket_id: i,
        size: 0,
        consumer_ranks: [9],
        items: [],
      })),
    };
    const report = verifyPlan({ ...many, total_bytes: 0 }, { trusted: true });
    const range = report.problems.filter((p) => p.check === 'rank-out-of-range');
    expect(range).toHaveLength(21);
    expect(range[20]?.message).toBe('more rank-out-of-range findings not shown');
  });
});
