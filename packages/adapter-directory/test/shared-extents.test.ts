/**
 * Deltas whose unchanged bytes are kernel-copied in pieces split at SHARE_ALIGN (so XFS and Btrfs
 * share them as reflinks: see bench/replicate/xfs.sh for the measurement). Here, on the test
 * machine's filesystem, every piece is copied: the new version must be the checkpoint byte for
 * byte whatever the entries' offsets, through both ways bytes land (staged buckets, and the
 * one-rank copy straight from the checkpoint), and the live version's files must keep their bytes.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import type { Manifest, Plan } from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { SHARE_ALIGN } from '@hotweights/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, writeCheckpoint } from './checkpoints.js';
import { bytesOf } from './feed.js';

const work = mkdtempSync(join(tmpdir(), 'hw-dir-shared-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const sha = (p: string) => createHash('sha256').update(readFileSync(p)).digest('hex');
const FILE = 'model.safetensors';
/** Rows of 64 F32 (256 bytes): a tensor of `blocks` alignments and `extra` bytes. */
const rows = (blocks: number, extra: number) => (blocks * SHARE_ALIGN + extra) / 256;

describe('deltas copied in shareable pieces', { timeout: 120_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  const moved = join(work, 'moved');
  const model = {
    ...randomTensors(['a'], rows(3, 256)),
    ...randomTensors(['b'], rows(2, 512)),
    ...randomTensors(['c'], rows(4, 768)),
    ...randomTensors(['d'], rows(1, 0)),
  };
  let m0: Manifest;
  let m1: Manifest;
  let m2: Manifest;
  let full: Plan;
  let delta: Plan;
  let shift: Plan;

  beforeAll(async () => {
    await writeCheckpoint(base, { [FILE]: model });
    // v1: b and d changed (entries at unaligned offsets: the safetensors header is ~300 bytes).
    await writeCheckpoint(ft, {
      [FILE]: {
        ...model,
        ...randomTensors(['b'], rows(2, 512)),
        ...randomTensors(['d'], rows(1, 0)),
      },
    });
    // v2: a shrinks by one alignment and d grows by as much: b and c keep their bytes but move by
    // exactly SHARE_ALIGN inside a file of the same size (copied from the live file in pieces).
    await writeCheckpoint(moved, {
      [FILE]: {
        ...model,
        ...randomTensors(['a'], rows(2, 256)),
        ...randomTensors(['d'], rows(2, 0)),
      },
    });
    m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'shared/model' });
    m1 = await publish({ checkpoint: ft, version: 'v1', modelId: 'shared/model' });
    m2 = await publish({ checkpoint: moved, version: 'v2', modelId: 'shared/model' });
    const opts = { nextManifestPath: null, bucketBytes: 1 << 20 };
    full = createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base });
    delta = createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft });
    shift = createPlan({ ...opts, prev: m0, next: m2, checkpointRoot: moved });
  });

  async function withV0(name: string) {
    const target = join(work, name);
    const adapter = new DirectoryAdapter({ target });
    const prep = await adapter.beginPrepare({ plan: full, manifest: m0 });
    for (const b of full.buckets) await prep.bucket(b, bytesOf(full, b));
    await prep.finish();
    await adapter.commit('v0');
    const live = join(target, 'versions/v0', FILE);
    return { target, adapter, live, liveHash: sha(live) };
  }

  it('the changed entries sit at offsets no block boundary meets', () => {
    const changed = delta.buckets.flatMap((b) => b.items.map((i) => i.key)).sort();
    expect(changed.map((k) => k.split(':')[0])).toEqual(['b', 'd']);
    for (const k of changed) expect((m1.get(k)?.file_offset ?? 0) % SHARE_ALIGN, k).not.toBe(0);
  });

  it('from staged buckets: the new file is the checkpoint byte for byte; the live file keeps its bytes', async () => {
    const { target, adapter, live, liveHash } = await withV0('buckets');
    const prep = await adapter.beginPrepare({ plan: delta, manifest: m1 });
    for (const b of delta.buckets) await prep.bucket(b, bytesOf(delta, b));
    await prep.finish();
    await adapter.commit('v1');
    const next = join(target, 'versions/v1', FILE);
    expect(sha(next)).toBe(sha(join(ft, FILE)));
    expect(statSync(next).ino).not.toBe(statSync(live).ino);
    expect(sha(live)).toBe(liveHash);
    expect(sha(live)).toBe(sha(join(base, FILE)));
    // Rolled back, the previous version is the one served, intact.
    expect(await adapter.rollback()).toBe('v0');
    expect(sha(join(target, 'current', FILE))).toBe(liveHash);
  });

  it('copied straight from the checkpoint (one rank): byte for byte; the live file keeps its bytes', async () => {
    const { target, adapter, live, liveHash } = await withV0('copied');
    const prep = await adapter.beginPrepare({ plan: delta, manifest: m1 });
    const src = await open(join(ft, FILE), 'r');
    try {
      for (const b of delta.buckets)
        for (const item of b.items) await prep.copyItem(item, { file: src, offset: item.file_offset });
    } finally {
      await src.close();
    }
    await prep.finish();
    expect(sha(join(target, 'versions/v1', FILE))).toBe(sha(join(ft, FILE)));
    expect(sha(live)).toBe(liveHash);
  });

  it('unchanged entries moved by exactly one alignment come from the live file byte for byte', async () => {
    const { target, adapter, live, liveHash } = await withV0('moved');
    const c = m2.entriesOfFile(FILE).find((e) => e.key.startsWith('c:'));
    const c0 = m0.entriesOfFile(FILE).find((e) => e.key.startsWith('c:'));
    expect((c0?.file_offset ?? 0) - (c?.file_offset ?? 0)).toBe(SHARE_ALIGN);
    expect(shift.buckets.some((b) => b.items.some((i) => i.key === c?.key))).toBe(false);
    const prep = await adapter.beginPrepare({ plan: shift, manifest: m2 });
    for (const b of shift.buckets) await prep.bucket(b, bytesOf(shift, b));
    await prep.finish();
    expect(sha(join(target, 'versions/v2', FILE))).toBe(sha(join(moved, FILE)));
    expect(sha(live)).toBe(liveHash);
  });
});
