/**
 * The directory adapter's streaming prepare through core's runRankUpdate: buckets are written into
 * the new version as they verify (staging reused), the result is byte-identical to the checkpoint,
 * and a bad byte mid-update leaves the live version, the previous one and the target untouched.
 */
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import {
  HostStaging,
  loadConfig,
  localTransportProvider,
  type Manifest,
  type Plan,
  runRankUpdate,
  type Transport,
  VerificationError,
} from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, type Tensors, writeCheckpoint } from './checkpoints.js';

const work = mkdtempSync(join(tmpdir(), 'hw-dir-stream-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-dir-stream-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});
const config = loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '2' });

async function update(
  adapter: DirectoryAdapter,
  plan: Plan,
  manifest: Manifest,
  corruptBucket?: number,
): Promise<{ segmentsSeen: number }> {
  const dir = mkdtempSync(join(shm, 'stg-'));
  const staging = await HostStaging.open({ dir });
  const inner = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
  let segmentsSeen = 0;
  const transport: Transport = {
    name: inner.name,
    rank: 0,
    worldSize: 1,
    close: () => inner.close(),
    async broadcast(req) {
      await inner.broadcast(req);
      segmentsSeen = Math.max(segmentsSeen, readdirSync(dir).filter((n) => n.endsWith('.seg')).length);
      if (req.bucketId === corruptBucket) (req.data as Uint8Array)[1] ^= 0x01;
    },
  };
  try {
    await runRankUpdate({
      plan,
      manifest,
      rank: 0,
      worldSize: 1,
      transport,
      staging,
      adapter,
      config,
      commit: true,
    });
  } finally {
    await transport.close();
    await staging.close();
  }
  expect(readdirSync(dir)).toEqual([]);
  return { segmentsSeen };
}

function expectSameTree(dir: string, checkpoint: string, files: readonly string[]) {
  for (const f of files) {
    expect(Buffer.compare(readFileSync(join(dir, f)), readFileSync(join(checkpoint, f))), f).toBe(0);
  }
}

describe('DirectoryAdapter streaming prepare', { timeout: 120_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  const ft2 = join(work, 'ft2');
  const names = ['a.safetensors', 'b.safetensors', 'c.safetensors', 'config.json'];
  let m0: Manifest;
  let m1: Manifest;
  let m2: Manifest;

  beforeAll(async () => {
    const a = randomTensors(['a.0', 'a.1', 'a.2', 'a.3'], 64);
    const b = randomTensors(['b.0', 'b.1'], 200);
    const c = randomTensors(['c.0'], 40);
    await writeCheckpoint(
      base,
      { 'a.safetensors': a, 'b.safetensors': b, 'c.safetensors': c },
      { 'config.json': '{}' },
    );
    // Fine-tune: one tensor of a (patched in place), one of b (split over buckets); c unchanged.
    const a1: Tensors = { ...a, 'a.2': randomTensors(['x'], 64).x as Tensors[string] };
    const b1: Tensors = { ...b, 'b.1': randomTensors(['x'], 200).x as Tensors[string] };
    await writeCheckpoint(
      ft,
      { 'a.safetensors': a1, 'b.safetensors': b1, 'c.safetensors': c },
      { 'config.json': '{}' },
    );
    const b2: Tensors = { ...b, 'b.0': randomTensors(['x'], 200).x as Tensors[string] };
    await writeCheckpoint(
      ft2,
      { 'a.safetensors': a1, 'b.safetensors': b2, 'c.safetensors': c },
      { 'config.json': '{}' },
    );
    m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'stream/model' });
    m1 = await publish({ checkpoint: ft, version: 'v1', modelId: 'stream/model' });
    m2 = await publish({ checkpoint: ft2, version: 'v2', modelId: 'stream/model' });
  });

  it('writes a full version and a delta as buckets verify, byte-identical, reusing staging', async () => {
    const target = join(work, 'target');
    const adapter = new DirectoryAdapter({ target });
    const opts = { checkpointRoot: '', nextManifestPath: null, bucketBytes: 16 * 1024 };
    const full = createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base });
    expect(full.buckets.length).toBeGreaterThan(8);
    const first = await update(adapter, full, m0);
    // Segments are reused: the peak is the window plus buckets pinned by split tensors' earlier
    // parts (a bucket shared by two split tensors pins both chains), not the whole version.
    expect(first.segmentsSeen).toBeLessThan(full.buckets.length);
    expect(await adapter.currentVersion()).toBe('v0');
    expectSameTree(join(target, 'current'), base, names);

    const delta = createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft });
    expect(delta.buckets.some((b) => b.items.some((i) => i.part))).toBe(true);
    await update(adapter, delta, m1);
    expect(await adapter.currentVersion()).toBe('v1');
    expectSameTree(join(target, 'current'), ft, names);
    expectSameTree(join(target, 'previous'), base, names);
  });

  it('a corrupted byte mid-update commits nothing: live and previous stay, no partial version is left', async () => {
    const target = join(work, 'target-bad');
    const adapter = new DirectoryAdapter({ target });
    const opts = { checkpointRoot: '', nextManifestPath: null, bucketBytes: 16 * 1024 };
    await update(adapter, createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base }), m0);
    await update(adapter, createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft }), m1);
    const delta = createPlan({ ...opts, prev: m1, next: m2, checkpointRoot: ft2 });
    expect(delta.buckets.length).toBeGreaterThan(2);
    const err = await update(adapter, delta, m2, delta.buckets[2]?.bucket_id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect(await adapter.currentVersion()).toBe('v1');
    expect(await adapter.previousVersion()).toBe('v0');
    expectSameTree(join(target, 'current'), ft, names);
    expectSameTree(join(target, 'previous'), base, names);
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v0', 'v1']);
    expect(existsSync(join(target, '.hotweights', 'v2.json'))).toBe(false);
  });
});
