import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ManifestEntry, ManifestFile, Plan } from '@hotweights/core';
import {
  buildManifest,
  canonicalJson,
  computePlanDigest,
  loadManifest,
  loadPlan,
} from '@hotweights/manifest';
import { createPlan, encodePlan, planFileBytes, writeManifest, writePlan } from '@hotweights/planner';
import { afterAll, describe, expect, it } from 'vitest';
import { itemBatch } from '../src/item-batch.js';
import { JsonBytes } from '../src/json-bytes.js';
import { bucketSource } from '../src/planned-items.js';
import { hash, safetensorsEntries } from './column-plans.js';
import { tempDir } from './fixtures.js';
import { jsColumnBytes, objectBytes, textCases } from './plan-text-fixtures.js';

const tmp = tempDir('plan-text-batch');
afterAll(tmp.cleanup);

/** A checkpoint of `files` safetensors files of `perFile` tensors each, every `changedEvery`-th tensor changed in v2. */
function layeredManifest(version: string, files: number, perFile: number, changedEvery: number) {
  const entries: ManifestEntry[] = [];
  const list: ManifestFile[] = [];
  for (let f = 0; f < files; f++) {
    const tensors = Array.from(
      { length: perFile },
      (_, t) => [`model.layers.${f}.block.${t}.weight`, 256 * (1 + (((f * perFile + t) * 31) % 97))] as const,
    );
    const st = safetensorsEntries(`model-${f}.safetensors`, 0, tensors, f * (perFile + 1));
    for (const e of st.entries) {
      const n = Number.parseInt(e.hash.slice(7), 16);
      entries.push(version === 'v2' && n % changedEvery === 0 ? { ...e, hash: hash(n + 1_000_000) } : e);
    }
    list.push(st.file);
  }
  return buildManifest(
    { version, model_id: 'batch', created_at: 'now', hash_algo: 'blake3', files: list },
    entries,
  );
}

describe('whole-plan native item writer (two sweeps in entry order)', () => {
  it('is what encodePlan uses for a createPlan plan, on 1 to 64 threads: the JS writer’s bytes and digest', async () => {
    const cases = await textCases(tmp.path);
    for (const { name, plan } of cases) {
      expect(itemBatch(plan.buckets.map(bucketSource)), name).toBeDefined();
      const js = jsColumnBytes(plan);
      expect(js.digest, name).toBe(plan.digest);
      for (const itemThreads of [1, 2, 3, 64]) {
        const encoded = encodePlan(plan, { trusted: true, itemThreads });
        expect(encoded.digest, `${name} on ${itemThreads} threads`).toBe(plan.digest);
        expect(
          Buffer.compare(planFileBytes(plan, encoded), js.bytes),
          `${name} on ${itemThreads} threads`,
        ).toBe(0);
      }
    }
  });

  it('writes a plan of 17,000 items, spread over the manifest, as the JS and object writers do', async () => {
    const prev = layeredManifest('v1', 170, 200, 1);
    const next = layeredManifest('v2', 170, 200, 2);
    const dir = tmp.path;
    await writeManifest(prev, join(dir, 'big-prev.manifest'));
    await writeManifest(next, join(dir, 'big-next.manifest'));
    const plan = createPlan({
      prev: await loadManifest(join(dir, 'big-prev.manifest'), { map: true }),
      next: await loadManifest(join(dir, 'big-next.manifest'), { map: true }),
      checkpointRoot: '/ckpt',
      nextManifestPath: null,
      bucketBytes: 1 << 20,
      createdAt: '2026-01-01T00:00:00Z',
    });
    const items = plan.buckets.reduce((n, b) => n + (bucketSource(b)?.items.length ?? 0), 0);
    expect(items).toBeGreaterThan(16_384);
    const out = join(dir, 'big.plan.json');
    await writePlan(plan, out);
    const written = readFileSync(out);
    expect(Buffer.compare(written, jsColumnBytes(plan).bytes)).toBe(0);
    for (const itemThreads of [1, 2])
      expect(
        Buffer.compare(written, planFileBytes(plan, encodePlan(plan, { trusted: true, itemThreads }))),
      ).toBe(0);
    expect(Buffer.compare(written, objectBytes(plan))).toBe(0);
    expect(computePlanDigest(plan)).toBe(plan.digest);
    expect((await loadPlan(out)).digest).toBe(plan.digest);
  });

  it('refuses to fill a place outside the buffer, or an item whose text changed since the layout', async () => {
    const cases = await textCases(tmp.path);
    const { plan } = cases.find((c) => c.name === 'ascii/memory/full') as { plan: Plan };
    const sources = plan.buckets.map(bucketSource);
    const batch = itemBatch(sources, 2);
    if (!batch) throw new Error('no whole-plan writer');
    batch.layout();
    const w = new JsonBytes(64);
    for (const s of sources) if (s) batch.place(w, s.items);
    expect(() => batch.render(new Uint8Array(16))).toThrow(/place is outside out/);
    // A dim grows by four digits after the layout: its item no longer fits its hole.
    const dims = batch.writer.manifest.columns.dims;
    const at = dims.indexOf(1024);
    expect(at).toBeGreaterThanOrEqual(0);
    dims[at] = 10_240_000;
    try {
      expect(() => batch.render(w.buffer)).toThrow(/changed since layout/);
    } finally {
      dims[at] = 1024;
    }
    // Laid out from a 64-byte buffer (grown as needed): every item's canonical text in its place.
    batch.render(w.buffer);
    const items = plan.buckets.flatMap((b) => b.items);
    expect(items.length).toBe(batch.count);
    for (const [g, item] of items.entries()) {
      const pos = batch.positions[g] as number;
      expect(w.buffer.subarray(pos, pos + (batch.lengths[g] as number)).toString('utf8')).toBe(
        canonicalJson(item),
      );
    }
  });
});
