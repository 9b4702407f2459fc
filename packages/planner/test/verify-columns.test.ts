/**
 * `hotweights plan` verifies a createPlan plan on its columns (verify-columns.ts), never building
 * its items. These tests damage those columns the way a bug in placement would, and check the
 * column path reports what a user must be told: overlaps, a size that is not the last item's end,
 * a path outside the root, a tensor planned whole and split, split parts that do not add up. Each
 * report is also compared with the object path (the same plan with plain PlanItem objects).
 */
import type { Plan } from '@hotweights/core';
import { buildManifest } from '@hotweights/manifest';
import { createPlan, planDigest, type VerifyPlanOptions, verifyPlan } from '@hotweights/planner';
import { describe, expect, it } from 'vitest';
import { type BucketSource, bucketSource } from '../src/planned-items.js';
import { asObjects, fileEntry, hash, safetensorsEntries } from './column-plans.js';

const BUCKET_BYTES = 1024;

/**
 * One safetensors file (a header, tensors of shard rank `rank` of `sizes` bytes: by default five
 * small ones and a 2600-byte one split into three parts) and a config file, under names starting
 * with `prefix`.
 */
function manifestOf(
  prefix: string,
  rank = 0,
  filePath = `${prefix}config.json`,
  sizes = [40, 70, 100, 130, 160, 2600],
) {
  const tensors = sizes.map((n, t) => [`${prefix}w${t}`, n] as const);
  const st = safetensorsEntries(`${prefix}model.safetensors`, rank, tensors, 1);
  return buildManifest(
    {
      version: 'v2',
      model_id: 'm',
      created_at: 'now',
      hash_algo: 'blake3',
      files: [st.file, { path: filePath, size: 17, kind: 'file' }],
    },
    [...st.entries, fileEntry(filePath, 17, hash(99))],
  );
}

function planOf(next = manifestOf(''), prev: ReturnType<typeof manifestOf> | null = null): Plan {
  return createPlan({
    prev,
    next,
    checkpointRoot: '/ck',
    nextManifestPath: null,
    bucketBytes: BUCKET_BYTES,
    alignment: 64,
    worldSize: 2,
    createdAt: '2026-01-01T00:00:00.000Z',
  });
}

/** The columns of each bucket; fails when a bucket was not made by createPlan. */
function sourcesOf(plan: Plan): BucketSource[] {
  return plan.buckets.map((b) => {
    const s = bucketSource(b);
    if (!s) throw new Error(`bucket ${b.bucket_id} has no columns`);
    return s;
  });
}

/** Position of `key` in its bucket's columns, with that bucket's index. */
function find(plan: Plan, key: string, part = -1): { bi: number; k: number; s: BucketSource } {
  for (const [bi, s] of sourcesOf(plan).entries())
    for (let k = 0; k < s.items.length; k++)
      if (s.writer.key(s.items, k) === key && s.items.part[k] === part) return { bi, k, s };
  throw new Error(`${key} part ${part} is not planned`);
}

/** The plan (its createPlan buckets kept, so still checked on columns) with a digest of its content. */
const redigest = (plan: Plan, head: Partial<Plan> = {}): Plan => {
  const out = { ...plan, ...head } as Plan;
  return { ...out, digest: planDigest(out) };
};

/** verifyPlan's findings as `check: message`, after checking the object path agrees. */
function findings(plan: Plan, options: VerifyPlanOptions = {}): string[] {
  const onColumns = verifyPlan(plan, options);
  expect(sourcesOf(plan)).toHaveLength(plan.buckets.length);
  expect(onColumns).toEqual(verifyPlan(asObjects(plan), options));
  return [...onColumns.problems, ...onColumns.warnings].map((f) => `${f.check}: ${f.message}`);
}

const total = (plan: Plan) => plan.buckets.reduce((t, b) => t + b.items.reduce((s, i) => s + i.nbytes, 0), 0);

describe('verifyPlan on columns', () => {
  it('accepts a plan with nothing to replicate', () => {
    const m = manifestOf('');
    const plan = planOf(m, m);
    expect(plan.buckets).toEqual([]);
    expect(verifyPlan(plan)).toEqual({ ok: true, problems: [], warnings: [] });
  });

  it('checks items in placement order when the columns hold them in another order', () => {
    // Buckets of two items (900-byte tensors) and of four.
    for (const plan of [planOf(manifestOf('', 0, 'config.json', [900, 900])), planOf()]) {
      // Reverse each bucket's columns: the same items at the same offsets, listed back to front.
      for (const { items } of sourcesOf(plan))
        for (const col of [items.entry, items.part, items.offset, items.nbytes])
          col.subarray(0, items.length).reverse();
      expect(findings(redigest(plan))).toEqual([]);
    }
  });

  it('reports every item inside an earlier item, and no size problem when that item ends the bucket', () => {
    const plan = planOf();
    const s = sourcesOf(plan).find((x) => x.items.length >= 3);
    if (!s) throw new Error('no bucket with three items');
    const id = plan.buckets[sourcesOf(plan).indexOf(s)]?.bucket_id;
    const size = plan.buckets[sourcesOf(plan).indexOf(s)]?.size as number;
    const last = s.items.offset[s.items.length - 1] as number;
    // The first item now covers the whole bucket: every later item overlaps it, even those that
    // start after the end of the item just before them.
    s.items.nbytes[0] = size;
    const key = (k: number) => s.writer.key(s.items, k);
    const got = findings(redigest(plan, { total_bytes: total(plan) }));
    expect(got.filter((f) => f.startsWith('overlap'))).toEqual(
      Array.from(
        { length: s.items.length - 1 },
        (_, i) =>
          `overlap: bucket ${id}: item ${key(i + 1)} at offset ${s.items.offset[i + 1]} overlaps the previous item (ends at ${size})`,
      ),
    );
    expect(last).toBeLessThan(size);
    expect(got.filter((f) => f.startsWith('bucket-size'))).toEqual([]);
  });

  it('reports a bucket whose last item ends before its size, or that has no items but a size', () => {
    const plan = planOf();
    const [first, second] = sourcesOf(plan);
    if (!first || !second) throw new Error('fewer than two buckets');
    const [b0, b1] = plan.buckets as [Plan['buckets'][number], Plan['buckets'][number]];
    first.items.nbytes[first.items.length - 1] = (first.items.nbytes[first.items.length - 1] as number) - 1;
    second.items.length = 0;
    const got = findings(redigest(plan, { total_bytes: total(plan) }));
    expect(got).toContain(
      `bucket-size: bucket ${b0.bucket_id}: size ${b0.size} is not the end of its last item (${b0.size - 1})`,
    );
    // An empty bucket is not measured against its items.
    expect(got.filter((f) => f.includes(`bucket ${b1.bucket_id}`))).toEqual([]);
  });

  it('reports an item whose file is outside the checkpoint root', () => {
    const plan = planOf(manifestOf('', 0, '../outside.json'));
    const { bi } = find(plan, '../outside.json:0');
    expect(findings(plan)).toEqual([
      `path: bucket ${plan.buckets[bi]?.bucket_id}: item ../outside.json:0 has uri "../outside.json" outside the checkpoint root`,
    ]);
  });

  it('reports a tensor planned both whole and split', () => {
    const plan = planOf();
    const { s } = find(plan, 'w5:0', 0);
    const whole = find(plan, 'w1:0');
    // The split tensor's entry placed once more, whole, after the last item of another bucket.
    const bucket = plan.buckets[whole.bi] as Plan['buckets'][number];
    whole.s.items.push(s.items.entry[find(plan, 'w5:0', 0).k] as number, -1, bucket.size, 2600);
    const got = findings(redigest(plan, { total_bytes: total(plan) }));
    expect(got).toContain('duplicate-key: item w5:0 is planned both whole and split');
    // Trusted (a plan just built): key uniqueness is not checked.
    expect(findings(redigest(plan, { total_bytes: total(plan) }), { trusted: true })).not.toContain(
      'duplicate-key: item w5:0 is planned both whole and split',
    );
  });

  describe('split parts', () => {
    const PARTS =
      'parts: split tensor w5:0: parts must be indexes 0..count-1 once each, contiguous, with one hash, adding up to tensor_nbytes';
    const parts = (plan: Plan) => [0, 1, 2].map((p) => find(plan, 'w5:0', p));
    const check = (plan: Plan) => findings(redigest(plan, { total_bytes: total(plan) }));

    it('accepts parts listed in any bucket order', () => {
      const plan = planOf();
      expect(parts(plan).map((p) => p.bi)).toEqual([...new Set(parts(plan).map((p) => p.bi))]);
      expect(check({ ...plan, buckets: [...plan.buckets].reverse() })).toEqual([]);
    });

    it('reports one part holding the whole tensor when the tensor needs three', () => {
      const plan = planOf();
      const [p0, p1, p2] = parts(plan);
      if (!p0 || !p1 || !p2) throw new Error('w5 is not split in three');
      p0.s.items.nbytes[p0.k] = 2600;
      const dropped = new Set([p1.bi, p2.bi]);
      expect(check({ ...plan, buckets: plan.buckets.filter((_, i) => !dropped.has(i)) })).toContain(PARTS);
    });

    it('reports a part index listed twice', () => {
      const plan = planOf();
      const [, p1, p2] = parts(plan);
      if (!p1 || !p2) throw new Error('w5 is not split in three');
      // Indexes 0, 1, 1 at byte offsets 0, 1024, 1024: contiguous and adding up, but index 2 is missing.
      p2.s.items.nbytes[p2.k] = (p1.s.items.nbytes[p1.k] as number) + (p2.s.items.nbytes[p2.k] as number);
      p1.s.items.nbytes[p1.k] = 0;
      p2.s.items.part[p2.k] = 1;
      expect(check(plan)).toContain(PARTS);
    });

    it('reports parts with a gap or an overlap between them', () => {
      const plan = planOf();
      const [p0, p1] = parts(plan);
      if (!p0 || !p1) throw new Error('w5 is not split');
      // Part 0 is 24 bytes short and part 1 24 bytes longer: still 2600 in all, but part 1 no
      // longer starts where its index says (1024).
      p0.s.items.nbytes[p0.k] = BUCKET_BYTES - 24;
      p1.s.items.nbytes[p1.k] = (p1.s.items.nbytes[p1.k] as number) + 24;
      expect(check(plan)).toContain(PARTS);
    });

    it('reports parts that do not add up to the tensor', () => {
      const plan = planOf();
      const p2 = parts(plan)[2];
      if (!p2) throw new Error('w5 is not split in three');
      p2.s.items.nbytes[p2.k] = (p2.s.items.nbytes[p2.k] as number) - 52;
      expect(check(plan)).toContain(PARTS);
    });
  });

  it('checks the TP groups of tensors only: files have no shard to group', () => {
    // Tensors of shard rank 1; the config file is shard rank 0, which no group names.
    const plan = planOf(manifestOf('', 1));
    expect(findings(plan, { tpGroups: new Map([[1, [0, 1]]]), enforceTpSuperset: true })).toEqual([]);
    expect(findings(plan, { tpGroups: new Map([[0, [0, 1]]]) })).toContain(
      `tp-no-group: bucket ${plan.buckets[find(plan, 'w0:1').bi]?.bucket_id}: item w0:1 has shard rank 1, which no TP group covers`,
    );
  });

  it('checks buckets from two plans item by item, each against its own manifest', () => {
    const a = planOf(manifestOf('a.'));
    const b = planOf(manifestOf('b.'));
    // Entry numbers of a and b coincide; keys do not: nothing is planned twice.
    const same = redigest(a, { buckets: [...a.buckets, ...b.buckets], total_bytes: total(a) + total(b) });
    const report = verifyPlan(same);
    expect(report.problems.map((p) => p.check)).not.toContain('duplicate-key');
    expect(report.problems.map((p) => p.check)).not.toContain('parts');
  });
});
