import type { ManifestEntry, ManifestFile, Plan, PlanItem } from '@hotweights/core';
import { buildManifest, computePlanDigest } from '@hotweights/manifest';
import { createPlan, planDigest, verifyPlan } from '@hotweights/planner';
import { describe, expect, it } from 'vitest';
import { bucketSource, type PlannedItems } from '../src/planned-items.js';
import { asObjects, fileEntry, hash, safetensorsEntries } from './column-plans.js';

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

  it('names each broken split part, a tampered plan, a path outside the root and an unknown hash', () => {
    const plan = splitPlan();
    /** The plan with its items as plain objects, `change` applied to each, re-digested. */
    const edited = (change: (it: PlanItem) => PlanItem, extra: Partial<Plan> = {}): Plan => {
      const buckets = plan.buckets.map((b) => ({ ...b, items: [...b.items].map((i) => change({ ...i })) }));
      const out = { ...plan, buckets, ...extra } as Plan;
      return { ...out, digest: planDigest(out) };
    };
    const problems = (p: Plan, opts = {}) =>
      verifyPlan(p, opts).problems.map((f) => `${f.check}: ${f.message}`);
    expect(problems(edited((i) => i))).toEqual([]);
    const part1 = (change: (it: PlanItem) => PlanItem) =>
      edited((i) => (i.part?.index === 1 ? change(i) : i));
    const partsMessage =
      'parts: split tensor big.bin:0: parts must be indexes 0..count-1 once each, contiguous, with one hash, adding up to tensor_nbytes';
    for (const broken of [
      part1((i) => ({ ...i, hash: `blake3:${'c'.repeat(64)}` })),
      part1((i) => ({ ...i, file_offset: i.file_offset + 1 })),
      part1((i) => ({ ...i, part: { ...(i.part as NonNullable<PlanItem['part']>), tensor_offset: 0 } })),
      part1((i) => ({ ...i, part: { ...(i.part as NonNullable<PlanItem['part']>), count: 4 } })),
      part1((i) => ({ ...i, part: { ...(i.part as NonNullable<PlanItem['part']>), index: 2 } })),
      part1((i) => ({ ...i, part: { ...(i.part as NonNullable<PlanItem['part']>), tensor_nbytes: 2999 } })),
    ])
      expect(problems(broken)).toContain(partsMessage);
    const tampered = { ...edited((i) => i), version: 'v2' };
    expect(problems(tampered)[0]).toMatch(
      /^digest: digest sha256:\w+ does not match the content \(sha256:\w+\): the plan was modified/,
    );
    expect(problems(tampered, { trusted: true })).toEqual([]);
    expect(problems(edited((i) => (i.key === 'small.bin:0' ? { ...i, uri: '../secret' } : i)))).toEqual([
      `path: bucket ${plan.buckets.find((b) => [...b.items].some((i) => i.key === 'small.bin:0'))?.bucket_id}: item small.bin:0 has uri "../secret" outside the checkpoint root`,
    ]);
    expect(problems(edited((i) => i, { hash_algo: 'md5' } as Partial<Plan>))[0]).toMatch(
      /^hash-algo: hash_algo: /,
    );
    expect(problems(edited((i) => i, { source: { ...plan.source, rank: 2 } } as Partial<Plan>))).toEqual([
      'rank-out-of-range: source rank 2 is outside 0..1',
    ]);
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

/**
 * A createPlan plan is verified on its columns; a copy whose buckets are plain objects goes
 * through the PlanItem checks. Both must give the same report for every kind of finding.
 */
describe('verifyPlan on createPlan columns', () => {
  function columnPlan(tpGroups?: ReadonlyMap<number, readonly number[]>): Plan {
    const entries: ManifestEntry[] = [];
    const files: ManifestFile[] = [];
    for (const rank of [0, 1, 2]) {
      // One tensor larger than a bucket (1024): split into parts.
      const layers = [0, 1, 2, 3, 4, 5].map(
        (layer) => [`layers.${layer}.w`, layer === 5 && rank === 0 ? 2600 : 40 + 30 * layer + rank] as const,
      );
      const st = safetensorsEntries(`rank${rank}.safetensors`, rank, layers, entries.length + 1);
      entries.push(...st.entries);
      files.push(st.file);
    }
    files.push({ path: 'config.json', size: 17, kind: 'file' });
    entries.push(fileEntry('config.json', 17, hash(99)));
    const meta = { version: 'v2', model_id: 'm', created_at: 'now', hash_algo: 'blake3', files };
    const next = buildManifest(meta, entries);
    const prev = buildManifest(
      { ...meta, version: 'v1', files: [...files, { path: 'gone.bin', size: 1, kind: 'file' }] },
      [
        ...entries.map((e, i) => (i % 3 === 1 ? e : { ...e, hash: hash(500 + i) })),
        {
          ...(entries[entries.length - 1] as ManifestEntry),
          key: 'gone.bin:0',
          tensor: 'gone.bin',
          file: 'gone.bin',
          nbytes: 1,
          hash: hash(700),
        },
      ],
    );
    return createPlan({
      prev,
      next,
      checkpointRoot: '/ck',
      nextManifestPath: null,
      bucketBytes: 1024,
      alignment: 64,
      worldSize: 3,
      createdAt: '2026-01-01T00:00:00.000Z',
      consumers: tpGroups ? { tpGroups } : {},
    });
  }
  /**
   * Moves the second item of the first bucket holding two or more to `offset(columns, size)`,
   * in the bucket's columns (before any item object is built from them).
   */
  const placeInColumns = (plan: Plan, offset: (items: PlannedItems, size: number) => number): Plan => {
    const bucket = plan.buckets.find((b) => (bucketSource(b)?.items.length ?? 0) >= 2);
    const source = bucket && bucketSource(bucket);
    if (!bucket || !source) throw new Error('test plan has no createPlan bucket with two items');
    source.items.offset[1] = offset(source.items, bucket.size);
    return plan;
  };
  const itemsBuilt = (plan: Plan) =>
    plan.buckets.some((b) => Object.getOwnPropertyDescriptor(b, 'items')?.get === undefined);

  it('builds no item objects and finds nothing wrong in a good plan', () => {
    const plan = columnPlan();
    expect(plan.buckets.length).toBeGreaterThan(1);
    expect(plan.removed).toEqual(['gone.bin:0']);
    for (const trusted of [true, false])
      expect(verifyPlan(plan, { trusted, requireConsumers: true })).toEqual({
        ok: true,
        problems: [],
        warnings: [],
      });
    expect(itemsBuilt(plan)).toBe(false);
  });

  it('reports what the item checks report, finding for finding', () => {
    const tp = new Map([
      [0, [0]],
      [1, [1, 2]],
    ]);
    const plan = columnPlan(tp);
    const planned = plan.buckets.flatMap((b) => b.items.map((i) => i.key));
    const fresh = () => columnPlan(tp);
    // Each variant keeps the createPlan buckets (a spread copies references), so it is checked
    // on columns; asObjects(variant) is checked on PlanItem objects.
    const variants: [string, (p: Plan) => Plan][] = [
      ['as made', (p) => p],
      ['alignment', (p) => ({ ...p, alignment: 4096 })],
      ['bucket bytes', (p) => ({ ...p, bucket_bytes: 100 })],
      ['total bytes', (p) => ({ ...p, total_bytes: 1 })],
      ['removed', (p) => ({ ...p, removed: [...p.removed, planned[0] as string, planned[3] as string] })],
      ['bucket twice', (p) => ({ ...p, buckets: [...p.buckets, p.buckets[0] as Plan['buckets'][number]] })],
      [
        'bucket dropped',
        (p) => ({ ...p, buckets: p.buckets.filter((b) => !b.items.some((i) => i.part?.index === 1)) }),
      ],
      // Placement errors createPlan never makes: written into the bucket's columns, so the column
      // path sees them as well as the objects built from those columns.
      ['overlap', (p) => placeInColumns(p, (items) => items.offset[0] as number)],
      ['item outside its bucket', (p) => placeInColumns(p, (_items, size) => size - 1)],
    ];
    const optionSets = [
      { trusted: true },
      { trusted: false },
      { trusted: true, worldSize: 2, requireConsumers: true },
      { trusted: true, tpGroups: new Map([[0, [0, 1]]]) },
      { trusted: true, tpGroups: new Map([[0, [0, 1]]]), enforceTpSuperset: true },
    ];
    let kinds = new Set<string>();
    for (const [name, change] of variants)
      for (const options of optionSets) {
        const variant = change(fresh());
        const onColumns = verifyPlan(variant, options);
        const onObjects = verifyPlan(asObjects(change(fresh())), options);
        expect(onColumns, `${name} ${JSON.stringify(options)}`).toEqual(onObjects);
        kinds = new Set([
          ...kinds,
          ...onColumns.problems.map((p) => p.check),
          ...onColumns.warnings.map((p) => p.check),
        ]);
      }
    for (const check of [
      'overlap',
      'item-outside-bucket',
      'alignment',
      'bucket-size',
      'total-bytes',
      'removed',
      'duplicate-key',
      'parts',
      'rank-out-of-range',
      'tp-superset',
      'tp-no-group',
      'tp-outside-groups',
      'digest',
    ])
      expect(kinds).toContain(check);
  });
});

describe('verifyPlan on patch items', () => {
  it('reports a patch in a version 1 plan, past its patch file, split, not smaller, or of another hash', () => {
    const plan = splitPlan();
    const bucket = plan.buckets.find((b) => b.items.some((it) => it.key === 'small.bin:0'));
    const small = bucket?.items.find((it) => it.key === 'small.bin:0');
    if (!bucket || !small) throw new Error('small.bin is not planned');
    const id = bucket.bucket_id;
    const patchOf = (over: object) => ({
      encoding: 'xor-brotli' as const,
      base_hash: `blake3:${'c'.repeat(64)}`,
      hash: `blake3:${'d'.repeat(64)}`,
      file_offset: 0,
      tensor_nbytes: 100,
      ...over,
    });
    const withPatch = (patch: object, head: Partial<Plan> = {}): Plan => {
      const body = {
        ...plan,
        ...head,
        buckets: plan.buckets.map((b) =>
          b === bucket
            ? { ...b, items: b.items.map((it) => (it === small ? { ...it, patch: patchOf(patch) } : it)) }
            : b,
        ),
      } as Plan;
      return { ...body, digest: computePlanDigest(body) };
    };
    const checks = (p: Plan) =>
      verifyPlan(p)
        .problems.filter((f) => f.check === 'patch')
        .map((f) => f.message);
    const ok = { plan_version: 2 as const, patches: { path: '/p.patches', bytes: 10 } };
    expect(checks(withPatch({}, ok))).toEqual([
      `bucket ${id}: patch item small.bin:0: only tensors are patched (kind file)`,
    ]);
    const v1 = checks(withPatch({}));
    expect(v1).toContain(`bucket ${id}: patch item small.bin:0: patches need plan_version 2`);
    expect(v1).toContain(`bucket ${id}: patch item small.bin:0: the plan names no patch file (patches.path)`);
    expect(checks(withPatch({ file_offset: 5 }, ok))).toContain(
      `bucket ${id}: patch item small.bin:0: its bytes 5..15 run past the patch file (10 bytes)`,
    );
    expect(checks(withPatch({ tensor_nbytes: 10 }, ok))).toContain(
      `bucket ${id}: patch item small.bin:0: 10 patch bytes for a 10-byte tensor`,
    );
    expect(checks(withPatch({ hash: `sha256:${'e'.repeat(64)}` }, ok))).toContain(
      `bucket ${id}: patch item small.bin:0: hash sha256:${'e'.repeat(64)} is not a blake3 hash`,
    );
  });
});
