/**
 * `liveItem`: the live version's bytes of one entry, which patch items are applied to. Read from
 * the live version's own file (never the checkpoint), following the live version as it changes,
 * and refused by name when the file is shorter than its manifest says.
 */
import { readFileSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import type { Manifest, Plan } from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, type Tensors, writeCheckpoint } from './checkpoints.js';
import { deployScratch } from './deploy.js';
import { refusal } from './feed.js';

const { work, deploy } = deployScratch('hw-dir-live-item-');

/** The bytes of `key` as `dir`'s copy of the entry's file holds them. */
function bytesIn(dir: string, manifest: Manifest, key: string): Uint8Array {
  const e = manifest.get(key);
  if (!e) throw new Error(`no entry ${key}`);
  return readFileSync(join(dir, e.file)).subarray(e.file_offset, e.file_offset + e.nbytes);
}

describe('DirectoryAdapter.liveItem', { timeout: 120_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  let m0: Manifest;
  let m1: Manifest;
  let full: Plan;
  let delta: Plan;
  let tensorKeys: string[];

  beforeAll(async () => {
    const tensors = randomTensors(['w', 'b', 'c'], 16);
    await writeCheckpoint(base, { 'model.safetensors': tensors }, { 'config.json': '{}' });
    await writeCheckpoint(
      ft,
      { 'model.safetensors': { ...tensors, b: randomTensors(['x'], 16).x as Tensors[string] } },
      { 'config.json': '{}' },
    );
    m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'live/item' });
    m1 = await publish({ checkpoint: ft, version: 'v1', modelId: 'live/item' });
    const opts = { nextManifestPath: null, bucketBytes: 8192 };
    full = createPlan({ prev: null, next: m0, checkpointRoot: base, ...opts });
    delta = createPlan({ prev: m0, next: m1, checkpointRoot: ft, ...opts });
    tensorKeys = Array.from({ length: m0.size }, (_, i) => m0.entry(i))
      .filter((e) => e.kind === 'tensor')
      .map((e) => e.key);
  });

  it('is null while nothing is live, then reads each entry from the live version as it changes', async () => {
    const target = join(work, 'follows');
    const adapter = new DirectoryAdapter({ target });
    expect(tensorKeys).toHaveLength(3);
    expect(await adapter.liveItem(tensorKeys[0] as string)).toBeNull();

    await deploy(adapter, full, m0);
    for (const key of tensorKeys)
      expect(Buffer.from((await adapter.liveItem(key)) as Uint8Array)).toEqual(
        Buffer.from(bytesIn(base, m0, key)),
      );
    expect(await adapter.liveItem('model.safetensors::no-such-tensor')).toBeNull();
    // Into a buffer of the entry's size: read there and that buffer returned; any other size is
    // left alone (the bytes come in a buffer of their own).
    const key = tensorKeys[1] as string;
    const want = Buffer.from(bytesIn(base, m0, key));
    const into = new Uint8Array(want.length);
    expect(await adapter.liveItem(key, into)).toBe(into);
    expect(Buffer.from(into)).toEqual(want);
    const other = new Uint8Array(want.length + 1);
    const own = await adapter.liveItem(key, other);
    expect(own).not.toBe(other);
    expect(Buffer.from(own as Uint8Array)).toEqual(want);
    expect(other.every((b) => b === 0)).toBe(true);

    await deploy(adapter, delta, m1);
    const changed = tensorKeys.filter((k) => m0.get(k)?.hash !== m1.get(k)?.hash);
    expect(changed).toHaveLength(1);
    for (const key of tensorKeys)
      expect(Buffer.from((await adapter.liveItem(key)) as Uint8Array)).toEqual(
        Buffer.from(bytesIn(ft, m1, key)),
      );
  });

  it('refuses, naming the file, an entry its live file is too short to hold', async () => {
    const target = join(work, 'short');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full, m0);
    const last = tensorKeys
      .map((k) => m0.get(k))
      .sort((a, b) => (b?.file_offset ?? 0) - (a?.file_offset ?? 0))[0];
    if (!last) throw new Error('no tensor entries');
    // The live copy, not the checkpoint: the adapter made it, and the test damages it.
    truncateSync(join(target, 'current', last.file), last.file_offset + 1);
    const err = await refusal(adapter.liveItem(last.key));
    expect(err.message).toContain(`live file ${last.file} is shorter than its manifest says`);
  });
});
