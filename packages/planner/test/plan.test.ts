import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, type ManifestEntry, type Plan, type PlanItem } from '@hotweights/core';
import {
  buildManifest,
  canonicalJson,
  computePlanDigest,
  loadManifest,
  loadPlan,
} from '@hotweights/manifest';
import {
  alignUp,
  createPlan,
  packFirstFitDecreasing,
  parseGroupMap,
  parseTpGroups,
  planDigest,
  publish,
  writeManifest,
  writePlan,
  writeSafetensors,
} from '@hotweights/planner';
import { afterAll, describe, expect, it } from 'vitest';
import { tempDir, tensor } from './fixtures.js';

const tmp = tempDir('plan');
afterAll(tmp.cleanup);

/** A synthetic manifest: each tensor its own whole "file" so sizes are free to choose. */
function manifest(
  version: string,
  tensors: Record<string, [number, string]>,
  shardRanks: Record<string, number> = {},
) {
  const entries: ManifestEntry[] = [];
  const files = Object.entries(tensors).map(([name, [size, hashChar]]) => {
    const rank = shardRanks[name] ?? 0;
    entries.push({
      key: `${name}:${rank}`,
      tensor: name,
      shard_rank: rank,
      kind: 'file',
      file: `${name}.bin`,
      file_offset: 0,
      nbytes: size,
      dtype: null,
      shape: null,
      hash: `xxh3-64:${hashChar.repeat(16)}`,
    });
    return { path: `${name}.bin`, size, kind: 'file' as const };
  });
  return buildManifest({ version, model_id: null, created_at: 'now', hash_algo: 'xxh3-64', files }, entries);
}

const base = { checkpointRoot: '/ckpt', nextManifestPath: null, createdAt: '2026-01-01T00:00:00Z' };
const keysOf = (p: Plan) => p.buckets.flatMap((b) => b.items.map((i) => i.key)).sort();

describe('delta', () => {
  it('plans changed and added entries, reports removed ones', () => {
    const prev = manifest('v1', { a: [10, 'a'], b: [10, 'b'], c: [10, 'c'] });
    const next = manifest('v2', { a: [10, 'a'], b: [10, 'f'], d: [10, 'd'] });
    const plan = createPlan({ ...base, prev, next, bucketBytes: 1024 });
    expect(keysOf(plan)).toEqual(['b:0', 'd:0']);
    expect(plan.removed).toEqual(['c:0']);
    expect(plan.prev_version).toBe('v1');
    expect(plan.total_bytes).toBe(20);
    expect(plan.checkpoint_bytes).toBe(30);
  });

  it('plans everything when there is no previous manifest or it is empty', () => {
    const next = manifest('v2', { a: [10, 'a'], b: [10, 'b'] });
    expect(keysOf(createPlan({ ...base, prev: null, next, bucketBytes: 1024 }))).toEqual(['a:0', 'b:0']);
    const empty = buildManifest(
      { version: 'v0', model_id: null, created_at: 'now', hash_algo: 'xxh3-64', files: [] },
      [],
    );
    const plan = createPlan({ ...base, prev: empty, next, bucketBytes: 1024 });
    expect(keysOf(plan)).toEqual(['a:0', 'b:0']);
    expect(plan.removed).toEqual([]);
  });

  it('plans nothing when nothing changed', () => {
    const m = manifest('v1', { a: [10, 'a'], empty: [0, 'e'] });
    const plan = createPlan({
      ...base,
      prev: m,
      next: manifest('v2', { a: [10, 'a'], empty: [0, 'e'] }),
      bucketBytes: 1024,
    });
    expect(plan.buckets).toEqual([]);
    expect(plan.total_bytes).toBe(0);
    expect(plan.removed).toEqual([]);
    // and a zero-byte entry on its own is planned like any other
    const full = createPlan({ ...base, prev: null, next: m, bucketBytes: 1024 });
    expect(keysOf(full)).toEqual(['a:0', 'empty:0']);
  });

  it('keys the delta on (tensor, shard_rank)', () => {
    const prev = manifest('v1', { w: [8, 'a'] }, { w: 0 });
    const next = manifest('v2', { w: [8, 'a'] }, { w: 1 });
    const plan = createPlan({ ...base, prev, next, bucketBytes: 1024 });
    expect(keysOf(plan)).toEqual(['w:1']);
    expect(plan.removed).toEqual(['w:0']);
  });

  it('refuses manifests hashed with different algorithms', () => {
    const prev = manifest('v1', { a: [8, 'a'] });
    const next = buildManifest(
      {
        version: 'v2',
        model_id: null,
        created_at: 'now',
        hash_algo: 'sha256',
        files: [{ path: 'a.bin', size: 8, kind: 'file' }],
      },
      [
        {
          key: 'a.bin:0',
          tensor: 'a.bin',
          shard_rank: 0,
          kind: 'file',
          file: 'a.bin',
          file_offset: 0,
          nbytes: 8,
          dtype: null,
          shape: null,
          hash: `sha256:${'0'.repeat(64)}`,
        },
      ],
    );
    expect(() => createPlan({ ...base, prev, next, bucketBytes: 1024 })).toThrowError(
      /uses xxh3-64 and the next .* uses sha256/,
    );
  });
});

describe('packing', () => {
  it('is first-fit decreasing with aligned offsets', () => {
    // capacity 1000, alignment 64: 600 -> b0@0; 500 -> b1@0; 300 -> b0@640 (640+300=940); 200 -> b1@512;
    // 100 -> b0? 940->960+100 > 1000 no; b1 712->768+100=868 ok
    const { placements, buckets } = packFirstFitDecreasing([100, 600, 300, 500, 200], 1000, 64);
    expect(buckets).toBe(2);
    expect(placements).toEqual([
      { bucket: 1, offset: 768 },
      { bucket: 0, offset: 0 },
      { bucket: 0, offset: 640 },
      { bucket: 1, offset: 0 },
      { bucket: 1, offset: 512 },
    ]);
    expect(alignUp(65, 64)).toBe(128);
    expect(alignUp(128, 64)).toBe(128);
  });

  it('is deterministic: ties keep input order, and the same input gives the same plan', () => {
    const next = manifest('v1', { a: [100, 'a'], b: [100, 'b'], c: [100, 'c'], d: [50, 'd'] });
    const p1 = createPlan({ ...base, prev: null, next, bucketBytes: 256, alignment: 64 });
    const p2 = createPlan({ ...base, prev: null, next, bucketBytes: 256, alignment: 64 });
    expect(p1).toEqual(p2);
    expect(p1.digest).toBe(p2.digest);
    expect(p1.buckets.map((b) => b.items.map((i) => [i.tensor, i.offset]))).toEqual([
      [
        ['a', 0],
        ['b', 128],
      ],
      [
        ['c', 0],
        ['d', 128],
      ],
    ]);
    for (const b of p1.buckets) {
      expect(b.size).toBeLessThanOrEqual(256);
      for (const it of b.items) expect(it.offset % 64).toBe(0);
    }
  });

  it('keeps every bucket within the bucket size and every offset aligned (default 256)', () => {
    const sizes: Record<string, [number, string]> = {};
    for (let i = 0; i < 200; i++) sizes[`t${i}`] = [1 + ((i * 7919) % 3000), 'a'];
    const plan = createPlan({ ...base, prev: null, next: manifest('v1', sizes), bucketBytes: 8192 });
    expect(plan.alignment).toBe(256);
    let total = 0;
    for (const b of plan.buckets) {
      expect(b.size).toBeLessThanOrEqual(8192);
      const sorted = [...b.items].sort((x, y) => x.offset - y.offset);
      for (const [i, it] of sorted.entries()) {
        expect(it.offset % 256).toBe(0);
        if (i > 0) {
          const prevItem = sorted[i - 1] as (typeof sorted)[number];
          expect(it.offset).toBeGreaterThanOrEqual(prevItem.offset + prevItem.nbytes);
        }
        total += it.nbytes;
      }
    }
    expect(total).toBe(plan.total_bytes);
    expect(keysOf(plan).length).toBe(200);
  });

  it('splits a tensor larger than a bucket into byte-range parts carrying the whole tensor hash', () => {
    const next = manifest('v1', { big: [2500, 'e'], small: [100, 'a'] });
    const plan = createPlan({ ...base, prev: null, next, bucketBytes: 1024 });
    const parts = plan.buckets.flatMap((b) => b.items).filter((i) => i.tensor === 'big');
    expect(
      parts.map((p) => [p.part?.index, p.part?.count, p.part?.tensor_offset, p.nbytes, p.file_offset]).sort(),
    ).toEqual([
      [0, 3, 0, 1024, 0],
      [1, 3, 1024, 1024, 1024],
      [2, 3, 2048, 452, 2048],
    ]);
    for (const p of parts) {
      expect(p.hash).toBe(`xxh3-64:${'e'.repeat(16)}`);
      expect(p.part?.tensor_nbytes).toBe(2500);
      expect(p.key).toBe('big:0');
    }
    for (const b of plan.buckets) expect(b.size).toBeLessThanOrEqual(1024);
    expect(plan.total_bytes).toBe(2600);
  });

  it('rejects a bad bucket size or alignment', () => {
    const next = manifest('v1', { a: [10, 'a'] });
    expect(() => createPlan({ ...base, prev: null, next, bucketBytes: 100 })).toThrowError(ConfigError);
    expect(() => createPlan({ ...base, prev: null, next, bucketBytes: 1024, alignment: 100 })).toThrowError(
      /power of two/,
    );
  });
});

describe('consumers', () => {
  const next = () =>
    manifest(
      'v1',
      { 'layers.0.q': [10, 'a'], 'layers.1.q': [10, 'b'], 'config.json': [5, 'c'], w: [10, 'd'] },
      { w: 1 },
    );

  it('defaults to every rank of the world', () => {
    const plan = createPlan({ ...base, prev: null, next: next(), bucketBytes: 1024, worldSize: 3 });
    expect(plan.world_size).toBe(3);
    expect(plan.buckets.map((b) => b.consumer_ranks)).toEqual([[0, 1, 2]]);
  });

  it('comes from a group map (globs on tensor names, union of matches)', () => {
    const groupMap = parseGroupMap('{"layers.0.*": [0], "layers.?.q": [1], "config.json": [2]}');
    const plan = createPlan({
      ...base,
      prev: null,
      next: next(),
      bucketBytes: 16,
      alignment: 1,
      worldSize: 4,
      consumers: { groupMap },
    });
    const byTensor = Object.fromEntries(
      plan.buckets.flatMap((b) => b.items.map((i) => [i.tensor, b.consumer_ranks])),
    );
    expect(byTensor['layers.0.q']).toEqual([0, 1]);
    expect(byTensor['layers.1.q']).toEqual([1]);
    expect(byTensor['config.json']).toEqual([2]);
    expect(byTensor.w).toEqual([0, 1, 2, 3]); // unmatched: every rank
  });

  it('comes from TP groups by shard rank (group 0 is a group), and from auto TP', () => {
    const entries: ManifestEntry[] = [0, 1].flatMap((r): ManifestEntry[] => [
      {
        key: `rank${r}.safetensors:${r}`,
        tensor: `rank${r}.safetensors`,
        shard_rank: r,
        kind: 'header',
        file: `rank${r}.safetensors`,
        file_offset: 0,
        nbytes: 8,
        dtype: null,
        shape: null,
        hash: `xxh3-64:${String(r + 2).repeat(16)}`,
      },
      {
        key: `w:${r}`,
        tensor: 'w',
        shard_rank: r,
        kind: 'tensor',
        file: `rank${r}.safetensors`,
        file_offset: 8,
        nbytes: 8,
        dtype: 'F32',
        shape: [2],
        hash: `xxh3-64:${String(r).repeat(16)}`,
      },
    ]);
    const files = [0, 1].map((r) => ({
      path: `rank${r}.safetensors`,
      size: 16,
      kind: 'safetensors' as const,
    }));
    const files2 = [...files, { path: 'config.json', size: 0, kind: 'file' as const }];
    const cfg: ManifestEntry = {
      key: 'config.json:0',
      tensor: 'config.json',
      shard_rank: 0,
      kind: 'file',
      file: 'config.json',
      file_offset: 0,
      nbytes: 0,
      dtype: null,
      shape: null,
      hash: `xxh3-64:${'9'.repeat(16)}`,
    };
    const m = buildManifest(
      { version: 'v1', model_id: null, created_at: 'now', hash_algo: 'xxh3-64', files: files2 },
      [...entries, cfg],
    );
    const tpGroups = parseTpGroups('{"0": [0, 2], "1": [1, 3]}');
    const consumersByKey = (p: Plan) =>
      Object.fromEntries(p.buckets.flatMap((b) => b.items.map((i) => [i.key, b.consumer_ranks])));
    const opts = { ...base, prev: null, next: m, bucketBytes: 16, alignment: 1, worldSize: 4 };
    const plan = createPlan({ ...opts, consumers: { tpGroups } });
    // buckets are scoped to one consumer set: TP shards never share a bucket
    expect(plan.buckets.map((b) => b.items.map((i) => i.key))).toEqual([
      ['config.json:0'],
      ['rank0.safetensors:0', 'w:0'],
      ['rank1.safetensors:1', 'w:1'],
    ]);
    expect(plan.buckets.map((b) => b.consumer_ranks)).toEqual([
      [0, 1, 2, 3],
      [0, 2],
      [1, 3],
    ]);
    const auto = createPlan({ ...opts, consumers: { tpAuto: true } });
    expect(consumersByKey(auto)).toEqual(consumersByKey(plan));
    // a shard rank without a group gets no consumers (verification reports it)
    const partial = createPlan({ ...opts, consumers: { tpGroups: parseTpGroups('{"0": [0, 1, 2, 3]}') } });
    expect(partial.buckets[2]?.consumer_ranks).toEqual([]);
  });

  it('rejects malformed group maps and TP groups naming the field', () => {
    expect(() => parseTpGroups('{"a": [0]}')).toThrowError(/TP groups: a: expected a group id/);
    expect(() => parseTpGroups('{"0": [-1]}')).toThrowError(/"0"\[0\]: expected an integer >= 0/);
    expect(() => parseTpGroups('{"0": [0]')).toThrowError(/not valid JSON/);
    expect(() => parseTpGroups(join(tmp.path, 'missing.json'))).toThrowError(
      /cannot read TP groups .*missing\.json: ENOENT/,
    );
    expect(() => parseGroupMap('{"x": 3}')).toThrowError(/group map: "x": expected an array/);
  });
});

describe('plan files', () => {
  it('round-trips: publish -> createPlan -> writePlan -> core loadPlan deep-equals, digest included', async () => {
    const a = join(tmp.path, 'ck-a');
    const b = join(tmp.path, 'ck-b');
    for (const [dir, seed] of [
      [a, 1],
      [b, 2],
    ] as const) {
      mkdirSync(dir);
      await writeSafetensors(join(dir, 'model.safetensors'), {
        same: tensor('F32', [64], 7, 4),
        changed: tensor('BF16', [300], seed, 2),
        big: tensor('F16', [2000], 11 + seed, 2),
      });
      writeFileSync(join(dir, 'config.json'), '{}');
    }
    const prev = await publish({ checkpoint: a, version: 'v1' });
    const next = await publish({ checkpoint: b, version: 'v2', modelId: 'org/m' });
    const mPath = join(tmp.path, 'next.json');
    await writeManifest(next, mPath, { checkpoint: b });
    const plan = createPlan({
      prev,
      next,
      checkpointRoot: b,
      nextManifestPath: mPath,
      bucketBytes: 1024,
      worldSize: 2,
    });
    expect(plan.buckets.flatMap((x) => x.items.map((i) => i.tensor)).sort()).toEqual([
      'big',
      'big',
      'big',
      'big',
      'changed',
    ]);
    const out = join(tmp.path, 'plan.json');
    await writePlan(plan, out);
    const loaded = await loadPlan(out);
    expect(loaded).toEqual(plan);
    expect(loaded.next_manifest).toEqual({ digest: next.digest, path: mPath });
    expect(loaded.source).toEqual({ root: b, rank: 0 });
    expect(loaded.model_id).toBe('org/m');
    expect(readdirSync(tmp.path).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('manifest formats and plan text', () => {
  /** Binary and JSON forms of a manifest, loaded back as `hotweights plan` loads them. */
  async function bothForms(m: ReturnType<typeof manifest>, name: string) {
    const bin = join(tmp.path, `${name}.manifest`);
    const json = join(tmp.path, `${name}.json`);
    await writeManifest(m, bin);
    await writeManifest(m, json, { format: 'json' });
    expect(readFileSync(bin).subarray(0, 4).toString('latin1')).toBe('\x89HWM');
    expect(JSON.parse(readFileSync(json, 'utf8')).manifest_version).toBe(2);
    return { bin: await loadManifest(bin), json: await loadManifest(json) };
  }

  it('gives the same plan from binary and JSON manifests, for aligned and shifted layouts', async () => {
    const sizes: Record<string, [number, string]> = {};
    for (let t = 0; t < 40; t++) sizes[`layer.${String(t).padStart(2, '0')}`] = [100 + t * 37, 'a'];
    const prev = manifest('v1', sizes);
    // Same layout, every 4th tensor changed.
    const same = manifest(
      'v2',
      Object.fromEntries(Object.entries(sizes).map(([k, [s]], i) => [k, [s, i % 4 ? 'a' : 'b']])),
    );
    // Shifted layout: new tensors sort in between (entry i of prev is no longer entry i of next),
    // one removed, one changed: binary manifests are merge-joined on their key order.
    const shifted = manifest('v2', {
      ...Object.fromEntries(Object.entries(sizes).filter(([k]) => k !== 'layer.07')),
      'layer.05a': [64, 'c'],
      'layer.00a': [64, 'c'],
      'layer.20': [sizes['layer.20']?.[0] as number, 'd'],
    });
    const p = await bothForms(prev, 'fmt-prev');
    for (const [name, next] of [
      ['same', same],
      ['shifted', shifted],
    ] as const) {
      const n = await bothForms(next, `fmt-${name}`);
      const opts = { ...base, bucketBytes: 1024, alignment: 64 };
      const fromBin = createPlan({ ...opts, prev: p.bin, next: n.bin });
      const fromJson = createPlan({ ...opts, prev: p.json, next: n.json });
      const fromMemory = createPlan({ ...opts, prev, next });
      expect(fromBin.digest).toBe(fromJson.digest);
      expect(fromBin.digest).toBe(fromMemory.digest);
      expect(fromBin).toEqual(fromJson);
      if (name === 'shifted') {
        expect(keysOf(fromBin)).toEqual(['layer.00a:0', 'layer.05a:0', 'layer.20:0']);
        expect(fromBin.removed).toEqual(['layer.07:0']);
      } else expect(new Set(keysOf(fromBin)).size).toBe(10);
    }
  });

  it('writes the plan file and digest from the manifest columns: same text as JSON of the items', async () => {
    const prev = manifest('v1', { a: [10, 'a'], 'b "quoted" name': [20, 'b'], é: [30, 'c'] });
    const next = manifest('v2', { a: [10, 'f'], 'b "quoted" name': [5000, 'e'], é: [30, 'd'] });
    const plan = createPlan({ ...base, prev, next, bucketBytes: 1024 });
    const out = join(tmp.path, 'text-plan.json');
    await writePlan(plan, out);
    const text = readFileSync(out, 'utf8');
    const doc = JSON.parse(text);
    // Items are built on demand and equal what the file says; spreads, JSON and clones see them.
    expect(doc.buckets).toEqual(JSON.parse(JSON.stringify(plan.buckets)));
    expect(structuredClone(plan)).toEqual(doc);
    expect(computePlanDigest(plan)).toBe(plan.digest);
    expect(planDigest(plan)).toBe(plan.digest);
    // One item per line, in canonical key order.
    const first = plan.buckets[0]?.items[0] as PlanItem;
    expect(text).toContain(`\n      ${canonicalJson(first)}`);
    expect((await loadPlan(out)).digest).toBe(plan.digest);
    // A changed copy is written from its own objects, not from the original's columns.
    const changed = { ...plan, buckets: plan.buckets.map((b) => ({ ...b, items: [...b.items] })) };
    const out2 = join(tmp.path, 'text-plan-2.json');
    await writePlan({ ...changed, digest: planDigest(changed) }, out2);
    expect(readFileSync(out2, 'utf8')).toBe(text);
  });
});
