import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '@hotweights/core';
import { canonicalJson, computePlanDigest, loadPlan } from '@hotweights/manifest';
import { nativeItemTextAvailable, nativeItemTextUnavailableReason, writePlan } from '@hotweights/planner';
import { afterAll, describe, expect, it } from 'vitest';
import { JsonBytes } from '../src/json-bytes.js';
import { bucketSource, ItemWriter } from '../src/planned-items.js';
import { tempDir } from './fixtures.js';
import { ESCAPED_NAMES, jsColumnBytes, objectBytes, textCases } from './plan-text-fixtures.js';

const tmp = tempDir('plan-text-native');
afterAll(tmp.cleanup);

/** Items of the plan the native writer leaves to the JS writer, by calling it bucket by bucket. */
function leftToJs(plan: Plan): number {
  let left = 0;
  const state = new Float64Array(3);
  const out = new Uint8Array(1 << 22);
  const canon = new Uint8Array(1 << 22);
  for (const b of plan.buckets) {
    const s = bucketSource(b);
    const native = s?.writer.nativeWriter();
    if (!s || !native) throw new Error('no native writer');
    let k = 0;
    let outAt = 0;
    let canonAt = 0;
    while (k < s.items.length) {
      k = native.write(
        s.items.entry,
        s.items.part,
        s.items.offset,
        s.items.nbytes,
        k,
        s.items.length,
        out,
        outAt,
        canon,
        canonAt,
        state,
      );
      outAt = state[0] as number;
      canonAt = state[1] as number;
      if (state[2] === 0) break;
      expect(state[2]).toBe(1);
      left++;
      k++;
    }
  }
  return left;
}

describe('native plan-text writer', () => {
  it('loads on this machine', () => {
    expect(nativeItemTextUnavailableReason()).toBeUndefined();
    expect(nativeItemTextAvailable()).toBe(true);
  });

  it('writes the same bytes as the JS writers, digest included, for every kind of item', async () => {
    const cases = await textCases(tmp.path);
    expect(cases.length).toBe(12);
    for (const { name, plan } of cases) {
      const out = join(tmp.path, `${name.replaceAll('/', '-')}.plan.json`);
      await writePlan(plan, out);
      const written = readFileSync(out);
      const js = jsColumnBytes(plan);
      expect(js.digest, name).toBe(plan.digest);
      expect(Buffer.compare(written, js.bytes), name).toBe(0);
      expect(Buffer.compare(written, objectBytes(plan)), name).toBe(0);
      expect(computePlanDigest(plan), name).toBe(plan.digest);
      expect((await loadPlan(out)).digest, name).toBe(plan.digest);
      const items = plan.buckets.flatMap((b) => b.items);
      // The fixture covers what the writers branch on.
      expect(
        items.some((i) => i.part && i.part.tensor_offset > 2 ** 32 && i.file_offset > 2 ** 32),
        name,
      ).toBe(true);
      expect(
        items.some((i) => i.kind === 'header' && i.shape === null && i.dtype === null),
        name,
      ).toBe(true);
      expect(
        items.some((i) => i.kind === 'file'),
        name,
      ).toBe(true);
      expect(
        items.some((i) => i.shape?.length === 0),
        name,
      ).toBe(true);
      expect(
        items.some((i) => i.shard_rank === 1),
        name,
      ).toBe(true);
      // ASCII names are all written natively; the escaped ones (and only those) go through JS.
      const escaped = items.filter((i) => ESCAPED_NAMES.includes(i.tensor)).length;
      expect(leftToJs(plan), name).toBe(escaped);
      if (name.startsWith('escaped')) expect(escaped, name).toBeGreaterThan(0);
      else expect(escaped, name).toBe(0);
    }
  });

  it('stops before an item that does not fit, and writeItems grows its buffers (same bytes)', async () => {
    const cases = await textCases(tmp.path);
    const { plan } = cases.find((c) => c.name === 'escaped/binary/full') as { plan: Plan };
    const state = new Float64Array(3);
    const b = plan.buckets.find((x) => x.items.length > 2) as Plan['buckets'][number];
    const s = bucketSource(b);
    const native = s?.writer.nativeWriter();
    if (!s || !native) throw new Error('no native writer');
    const { entry, part, offset, nbytes, length } = s.items;
    // A buffer too small for one item: the writer stops before writing anything.
    const k = native.write(
      entry,
      part,
      offset,
      nbytes,
      0,
      length,
      new Uint8Array(16),
      0,
      new Uint8Array(16),
      0,
      state,
    );
    expect([k, state[0], state[1], state[2]]).toEqual([0, 0, 0, 2]);
    expect(() =>
      native.write(
        entry,
        part,
        offset,
        nbytes,
        0,
        length + 1,
        new Uint8Array(16),
        0,
        new Uint8Array(16),
        0,
        state,
      ),
    ).toThrow(/range outside/);
    // From 64-byte buffers: grown as needed, the same text as the JS writer's, canon joined by commas.
    const w = new JsonBytes(64);
    const canon = new JsonBytes(64);
    s.writer.writeItems(w, canon, s.items);
    const jw = new JsonBytes(64);
    const jc = new JsonBytes(64);
    new ItemWriter(s.writer.manifest, s.writer.bucketBytes, false).writeItems(jw, jc, s.items);
    expect(w.length).toBeGreaterThan(1000);
    expect(Buffer.compare(w.view(), jw.view())).toBe(0);
    expect(Buffer.compare(canon.view(), jc.view())).toBe(0);
    expect(canon.view().toString('utf8')).toBe(b.items.map((i) => canonicalJson(i)).join(','));
  });
});
