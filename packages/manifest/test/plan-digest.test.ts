import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { computePlanDigest, loadPlan } from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'hw-plan-digest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A plan as a writer may produce it: optional nullable fields left out. */
function minimalPlan(): Record<string, unknown> {
  const body = {
    schema: 'hotweights.plan',
    plan_version: 1,
    version: 'v2',
    created_at: '2026-11-23T00:00:00.000Z',
    hash_algo: 'xxh3-64',
    source: { root: '/ckpt', rank: 0 },
    next_manifest: { digest: 'sha256:00' },
    bucket_bytes: 1024,
    alignment: 64,
    total_bytes: 8,
    checkpoint_bytes: 8,
    removed: [],
    buckets: [
      {
        bucket_id: 0,
        size: 8,
        consumer_ranks: [0],
        items: [
          {
            key: 'w:0',
            tensor: 'w',
            shard_rank: 0,
            kind: 'file',
            nbytes: 8,
            hash: 'xxh3-64:ab',
            uri: 'extra.bin',
            file_offset: 0,
            offset: 0,
          },
        ],
      },
    ],
  };
  return { ...body, digest: computePlanDigest(body as never) };
}

describe('plan digest', () => {
  it('accepts a plan whose optional fields were omitted by its writer', async () => {
    const file = join(dir, 'minimal.json');
    writeFileSync(file, JSON.stringify(minimalPlan()));
    const plan = await loadPlan(file);
    expect(plan.prev_version).toBeNull();
    expect(plan.buckets[0]?.items[0]?.dtype).toBeNull();
  });

  it('detects an edit to a field that validation does not keep', async () => {
    const file = join(dir, 'edited.json');
    const plan = minimalPlan();
    writeFileSync(file, JSON.stringify({ ...plan, note: 'added after planning' }));
    await expect(loadPlan(file)).rejects.toThrow(/digest: expected sha256:[0-9a-f]+ \(the plan was modified/);
  });
});
