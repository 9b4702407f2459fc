/**
 * The directory adapter's streaming prepare through core's runRankUpdate: buckets are written into
 * the new version as they verify (staging reused), the result is byte-identical to the checkpoint,
 * and a bad byte mid-update leaves the live version, the previous one and the target untouched.
 * With one rank the source is every bucket's only consumer, so items are copied from the
 * checkpoint straight into the version (`copyItem`) and verified there; the staged path is
 * exercised by hiding `copyItem` from the Replicator.
 */
import {
  closeSync,
  existsSync,
  mkdtempSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  rmSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import {
  type Adapter,
  hasErrorCode,
  loadConfig,
  type Manifest,
  type Plan,
  type Transport,
  VerificationError,
} from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { HostStaging, runRankUpdate } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, type Tensors, writeCheckpoint } from './checkpoints.js';

const work = mkdtempSync(join(tmpdir(), 'hw-dir-stream-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-dir-stream-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});
const config = loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '2' });

/** The same adapter without `copyItem`: every bucket then goes through staging and `bucket`. */
function viaStaging(a: DirectoryAdapter, afterFinish?: () => void): Adapter {
  return {
    name: a.name,
    currentVersion: () => a.currentVersion(),
    prepare: (u) => a.prepare(u),
    async beginPrepare(u) {
      const p = await a.beginPrepare(u);
      return {
        bucket: (b, bytes) => p.bucket(b, bytes),
        finish: () => p.finish().then(afterFinish),
        discard: () => p.discard(),
      };
    },
    commit: (v) => a.commit(v),
    abort: (v) => a.abort(v),
    rollback: () => a.rollback(),
  };
}

async function update(
  target: DirectoryAdapter,
  plan: Plan,
  manifest: Manifest,
  options: { corruptBucket?: number; staged?: boolean; stopWhileFinishing?: boolean } = {},
): Promise<{ segmentsSeen: number; broadcasts: number }> {
  const { corruptBucket, staged = true } = options;
  // A stop (SIGTERM) that lands while the adapter finishes the version, which does not wait on it.
  const stop = new AbortController();
  const adapter = staged
    ? viaStaging(
        target,
        options.stopWhileFinishing ? () => stop.abort(new Error('received SIGTERM')) : undefined,
      )
    : target;
  const dir = mkdtempSync(join(shm, 'stg-'));
  const staging = await HostStaging.open({ dir });
  const inner = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
  let segmentsSeen = 0;
  let broadcasts = 0;
  const transport: Transport = {
    name: inner.name,
    rank: 0,
    worldSize: 1,
    close: () => inner.close(),
    async broadcast(req) {
      // Bucket broadcasts only (the commit vote goes over the transport too).
      if (plan.buckets.some((b) => b.bucket_id === req.bucketId)) broadcasts++;
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
      signal: stop.signal,
    });
  } finally {
    await transport.close();
    await staging.close();
  }
  expect(readdirSync(dir)).toEqual([]);
  return { segmentsSeen, broadcasts };
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
    const err = await update(adapter, delta, m2, { corruptBucket: delta.buckets[2]?.bucket_id }).catch(
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(VerificationError);
    expect(await adapter.currentVersion()).toBe('v1');
    expect(await adapter.previousVersion()).toBe('v0');
    expectSameTree(join(target, 'current'), ft, names);
    expectSameTree(join(target, 'previous'), base, names);
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v0', 'v1']);
    expect(existsSync(join(target, '.hotweights', 'v2.json'))).toBe(false);
  });

  it('a stop that lands while the version is finishing removes the finished version: nothing is left', async () => {
    const target = join(work, 'target-stopped');
    const adapter = new DirectoryAdapter({ target });
    const opts = { checkpointRoot: '', nextManifestPath: null, bucketBytes: 16 * 1024 };
    await update(adapter, createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base }), m0);
    const delta = createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft });
    const err = await update(adapter, delta, m1, { stopWhileFinishing: true }).catch((e: unknown) => e);
    expect(hasErrorCode(err, 'HW_ABORTED'), String(err)).toBe(true);
    expect(await adapter.currentVersion()).toBe('v0');
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(existsSync(join(target, '.hotweights', 'v1.json'))).toBe(false);
  });

  it('with one rank, copies every item from the checkpoint into the version and verifies it there: no staging, no broadcast', async () => {
    const target = join(work, 'target-direct');
    const adapter = new DirectoryAdapter({ target });
    const opts = { checkpointRoot: '', nextManifestPath: null, bucketBytes: 16 * 1024 };
    const full = createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base });
    const first = await update(adapter, full, m0, { staged: false });
    expect(first).toEqual({ segmentsSeen: 0, broadcasts: 0 });
    expect(await adapter.currentVersion()).toBe('v0');
    expectSameTree(join(target, 'current'), base, names);

    // A delta with a split tensor (b.1) and a tensor patched into a copy of the live file (a.2).
    const delta = createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft });
    expect(delta.buckets.some((b) => b.items.some((i) => i.part))).toBe(true);
    expect((await update(adapter, delta, m1, { staged: false })).broadcasts).toBe(0);
    expect(await adapter.currentVersion()).toBe('v1');
    expectSameTree(join(target, 'current'), ft, names);
    expectSameTree(join(target, 'previous'), base, names);
  });

  it('with one rank, a checkpoint byte changed after publish is caught where it landed: nothing is committed', async () => {
    const target = join(work, 'target-direct-bad');
    const adapter = new DirectoryAdapter({ target });
    const opts = { checkpointRoot: '', nextManifestPath: null, bucketBytes: 16 * 1024 };
    await update(adapter, createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base }), m0, {
      staged: false,
    });
    await update(adapter, createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft }), m1, {
      staged: false,
    });
    const delta = createPlan({ ...opts, prev: m1, next: m2, checkpointRoot: ft2 });
    // b.0 changed in v2 and is larger than a bucket: flip one byte of its second part.
    const part = delta.buckets.flatMap((b) => b.items).find((i) => i.tensor === 'b.0' && i.part?.index === 1);
    expect(part).toBeDefined();
    const file = join(ft2, 'b.safetensors');
    const at = (part?.file_offset ?? 0) + 5;
    const fd = openSync(file, 'r+');
    const one = Buffer.alloc(1);
    try {
      readSync(fd, one, 0, 1, at);
      writeSync(fd, Buffer.from([(one[0] as number) ^ 0xff]), 0, 1, at);
      const err = await update(adapter, delta, m2, { staged: false }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(VerificationError);
      expect((err as Error).message).toMatch(
        /item b\.0:0 \(b\.safetensors, bucket \d+\) does not match its hash/,
      );
    } finally {
      writeSync(fd, one, 0, 1, at);
      closeSync(fd);
    }
    expect(await adapter.currentVersion()).toBe('v1');
    expect(await adapter.previousVersion()).toBe('v0');
    expectSameTree(join(target, 'current'), ft, names);
    expectSameTree(join(target, 'previous'), base, names);
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v0', 'v1']);
    // The same plan goes through once the checkpoint is whole again.
    await update(adapter, delta, m2, { staged: false });
    expect(await adapter.currentVersion()).toBe('v2');
    expectSameTree(join(target, 'current'), ft2, names);
  });
});
