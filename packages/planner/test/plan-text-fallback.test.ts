import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '@hotweights/core';
import { computePlanDigest, loadPlan } from '@hotweights/manifest';
import { nativeItemTextAvailable, nativeItemTextUnavailableReason, writePlan } from '@hotweights/planner';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { itemBatch } from '../src/item-batch.js';
import { bucketSource } from '../src/planned-items.js';
import { tempDir } from './fixtures.js';
import { jsColumnBytes, objectBytes, textCases } from './plan-text-fixtures.js';

// The addon is looked for where none was built (as on a machine without a prebuild or compiler):
// the loader finds nothing, and the planner must write every plan in JS, the same bytes.
vi.mock('../src/item-text-addon.js', async (importOriginal) => {
  const actual = await importOriginal<typeof import('../src/item-text-addon.js')>();
  return { itemTextAddon: () => actual.itemTextAddon(join(import.meta.dirname, 'no-addon-here')) };
});

const tmp = tempDir('plan-text-fallback');
afterAll(tmp.cleanup);

describe('plan text without the native writer', () => {
  it('says why the addon is not used: where it looked and how to fix it', () => {
    expect(nativeItemTextAvailable()).toBe(false);
    const reason = nativeItemTextUnavailableReason();
    expect(reason).toMatch(/^@hotweights\/planner: native addon not loadable on /);
    expect(reason).toContain(join(import.meta.dirname, 'no-addon-here', 'build', 'Release'));
    expect(reason).toContain(join(import.meta.dirname, 'no-addon-here', 'prebuilds'));
    expect(reason).toContain('`npm rebuild @hotweights/planner`');
  });

  it('writes the same bytes and digest in JS', async () => {
    const cases = await textCases(tmp.path);
    expect(cases.length).toBe(12);
    for (const { name, plan } of cases) {
      expect(
        bucketSource(plan.buckets[0] as Plan['buckets'][number])?.writer.nativeWriter(),
        name,
      ).toBeNull();
      expect(itemBatch(plan.buckets.map(bucketSource)), name).toBeUndefined();
      const out = join(tmp.path, `${name.replaceAll('/', '-')}.plan.json`);
      await writePlan(plan, out);
      const written = readFileSync(out);
      expect(Buffer.compare(written, jsColumnBytes(plan).bytes), name).toBe(0);
      expect(Buffer.compare(written, objectBytes(plan)), name).toBe(0);
      expect(computePlanDigest(plan), name).toBe(plan.digest);
      expect((await loadPlan(out)).digest, name).toBe(plan.digest);
    }
  });
});
