/**
 * The preparation's guards that the end state of a normal update does not show (found by mutation
 * testing, see docs/TESTING.md): which mode bits a file gets when the checkpoint changed after
 * publishing, a discard that lets the writes under way end before it removes their files, a layout
 * that fails, entries a full plan over a live version did not deliver, a tensor that moved to
 * another file, and a live file that cannot be read.
 */
import {
  appendFileSync,
  chmodSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  statSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import type { Manifest, Plan, PlanBucket } from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, type Tensors, writeCheckpoint } from './checkpoints.js';
import { bytesOf, land, landedIn, openUnder, refusal, same } from './feed.js';

const work = mkdtempSync(join(tmpdir(), 'hw-dir-guards-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const ino = (p: string) => statSync(p).ino;
const mode = (p: string) => statSync(p).mode & 0o777;
const opts = { nextManifestPath: null, bucketBytes: 8192 };
const FILES = ['config.json', 'model.safetensors', 'other.safetensors'];

describe('DirectoryPreparation guards', { timeout: 120_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  const moved = join(work, 'moved');
  let m0: Manifest;
  let m1: Manifest;
  let m2: Manifest;
  let full: Plan;
  let patch: Plan;
  let shift: Plan;

  const renamed = join(work, 'renamed');
  let m3: Manifest;

  beforeAll(async () => {
    const model = randomTensors(['a', 'b', 'c'], 16);
    const other = randomTensors(['o'], 16);
    // v3: b gives way to a new tensor q of its size, in its place.
    await writeCheckpoint(
      renamed,
      {
        'model.safetensors': {
          a: model.a as Tensors[string],
          q: randomTensors(['q'], 16).q as Tensors[string],
          c: model.c as Tensors[string],
        },
        'other.safetensors': other,
      },
      { 'config.json': '{"base":1}' },
    );
    // v2: a shrinks and c grows by as much: b keeps its bytes but moves inside a file of the same size.
    await writeCheckpoint(
      moved,
      {
        'model.safetensors': {
          a: randomTensors(['a'], 12).a as Tensors[string],
          b: model.b as Tensors[string],
          c: randomTensors(['c'], 20).c as Tensors[string],
        },
        'other.safetensors': other,
      },
      { 'config.json': '{"base":1}' },
    );
    await writeCheckpoint(
      base,
      { 'model.safetensors': model, 'other.safetensors': other },
      {
        'config.json': '{"base":1}',
      },
    );
    // v1: b changed; config.json keeps its bytes but its mode differs.
    await writeCheckpoint(
      ft,
      {
        'model.safetensors': { ...model, b: randomTensors(['x'], 16).x as Tensors[string] },
        'other.safetensors': other,
      },
      { 'config.json': '{"base":1}' },
    );
    chmodSync(join(base, 'config.json'), 0o644);
    chmodSync(join(ft, 'config.json'), 0o600);
    m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'guards/model' });
    m1 = await publish({ checkpoint: ft, version: 'v1', modelId: 'guards/model' });
    full = createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base });
    patch = createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft });
    m2 = await publish({ checkpoint: moved, version: 'v2', modelId: 'guards/model' });
    shift = createPlan({ ...opts, prev: m0, next: m2, checkpointRoot: moved });
    m3 = await publish({ checkpoint: renamed, version: 'v3', modelId: 'guards/model' });
  });

  const withV0 = (name: string) => landedIn(join(work, name), full, m0);

  it('a source file whose size changed since publishing gives no mode: the unchanged file stays a link with the live mode', async () => {
    const { target, adapter } = await withV0('edited-source');
    // The checkpoint was edited after v1 was published: its config.json is no longer the one in
    // the manifest, so its mode bits (0600) say nothing about v1's file.
    const edited = join(work, 'ft-edited');
    cpSync(ft, edited, { recursive: true });
    appendFileSync(join(edited, 'config.json'), '\n');
    expect(mode(join(edited, 'config.json'))).toBe(0o600);
    const plan: Plan = { ...patch, source: { ...patch.source, root: edited } };
    const prep = await adapter.beginPrepare({ plan, manifest: m1 });
    for (const b of patch.buckets) await prep.bucket(b, bytesOf(patch, b));
    await prep.finish();
    const dir = join(target, 'versions/v1');
    for (const f of FILES) expect(same(join(dir, f), join(ft, f)), f).toBe(true);
    expect(ino(join(dir, 'config.json'))).toBe(ino(join(target, 'versions/v0/config.json')));
    expect(mode(join(dir, 'config.json'))).toBe(0o644);
  });

  it('a discard lets the writes already under way end before it removes their file', async () => {
    const target = join(work, 'discard-in-flight');
    const adapter = new DirectoryAdapter({ target });
    const prep = await adapter.beginPrepare({ plan: full, manifest: m0 });
    // Every item of model.safetensors in one bucket: several writes queued on one file.
    let at = 0;
    const items = full.buckets
      .flatMap((b) => b.items)
      .filter((i) => i.uri === 'model.safetensors')
      .map((i) => {
        at += i.nbytes;
        return { ...i, offset: at - i.nbytes };
      });
    expect(items.length).toBeGreaterThan(2);
    const bucket: PlanBucket = { ...(full.buckets[0] as PlanBucket), items, size: at };
    const writing = prep.bucket(bucket, bytesOf(full, bucket));
    const discarding = prep.discard();
    // The writes end as they would have (none fails on a file closed under it), then the folder goes.
    await expect(writing).resolves.toBeUndefined();
    await discarding;
    expect(readdirSync(join(target, 'versions'))).toEqual([]);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
    expect(openUnder(target)).toEqual([]);
  });

  it('a version path too long for the target fails the start by name and leaves nothing', async () => {
    // 5 x 200 characters of folders in the checkpoint; the target is 16 x 200 deep, so the new
    // version's path passes the system's 4096-byte limit while every path of the target itself fits.
    const sub = Array.from({ length: 5 }, (_, i) => `${i}`.repeat(200)).join('/');
    const src = join(work, 'deep-src');
    mkdirSync(join(src, sub), { recursive: true });
    await writeCheckpoint(src, { 'model.safetensors': randomTensors(['a'], 4) }, { [`${sub}/w.json`]: '{}' });
    const m = await publish({ checkpoint: src, version: 'v0', modelId: 'guards/deep' });
    const plan = createPlan({ ...opts, prev: null, next: m, checkpointRoot: src });
    const target = join(work, ...Array.from({ length: 16 }, () => 'd'.repeat(200)));
    const adapter = new DirectoryAdapter({ target });
    const err = await refusal(adapter.beginPrepare({ plan, manifest: m }));
    expect(err.name).toBe('AdapterError');
    expect(err.message).toMatch(new RegExp(`^${target}: cannot prepare v0: ENAMETOOLONG`));
    expect(readdirSync(join(target, 'versions'))).toEqual([]);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });

  it('a plan naming an item the manifest lacks is refused by the bucket that carries it, naming the item', async () => {
    const { target, adapter } = await withV0('stray-item');
    const [first] = patch.buckets as [PlanBucket];
    const stray: PlanBucket = {
      ...first,
      bucket_id: first.bucket_id + 1000,
      items: [{ ...(first.items[0] as PlanBucket['items'][number]), key: 'nope:0' }],
    };
    const plan: Plan = { ...patch, buckets: [...patch.buckets, stray] };
    const prep = await adapter.beginPrepare({ plan, manifest: m1 });
    const err = await refusal(prep.bucket(stray, bytesOf(plan, stray)));
    expect(err.message).toBe(`${target}: plan item nope:0 is not in the manifest of v1 (${m1.digest})`);
    await prep.discard();
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
  });

  it('a full plan over a live version: entries of a bucket that never came, unchanged since the live version, are copied from it', async () => {
    const { target, adapter } = await withV0('full-missing');
    const again = createPlan({ ...opts, prev: null, next: m1, checkpointRoot: ft });
    const b = m1.entriesOfFile('model.safetensors').find((e) => e.tensor === 'b')?.key;
    // A bucket of model.safetensors without the changed b: all its entries are the live version's.
    const missing = again.buckets.find(
      (bk) => bk.items.some((i) => i.uri === 'model.safetensors') && !bk.items.some((i) => i.key === b),
    ) as PlanBucket;
    for (const i of missing.items) expect(m1.get(i.key)?.hash, i.key).toBe(m0.get(i.key)?.hash);
    await land(adapter, again, m1, (bk) => bk === missing);
    const dir = join(target, 'versions/v1');
    for (const f of FILES) expect(same(join(dir, f), join(ft, f)), f).toBe(true);
  });

  it('a live file that cannot be read is reported with the system error, not as a short file; live stays', async () => {
    const { target, adapter } = await withV0('unreadable');
    const prep = await adapter.beginPrepare({ plan: shift, manifest: m2 });
    for (const bk of shift.buckets) await prep.bucket(bk, bytesOf(shift, bk));
    // b moved inside model.safetensors: the finish copies it from the live file, now a folder.
    const live = join(target, 'versions/v0/model.safetensors');
    rmSync(live);
    mkdirSync(live);
    const err = await refusal(prep.finish());
    expect(err.name).toBe('AdapterError');
    // The system's error (copy_file_range, or read without the native addon), not "shorter than its manifest says".
    expect(err.message).toMatch(new RegExp(`^${target}: cannot prepare v2: .*(Is a directory|EISDIR)`));
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
    expect(await adapter.currentVersion()).toBe('v0');
  });

  it('a tensor that moved to another file at the same offset is taken from the file it was in', async () => {
    // Two shards trade their tensors (same names' lengths, same shapes): each header changes, each
    // tensor keeps its bytes and offset but lives in the other file now.
    const [x, y] = [randomTensors(['x'], 16).x, randomTensors(['y'], 16).y] as Tensors[string][];
    const s0 = join(work, 'swap0');
    const s1 = join(work, 'swap1');
    await writeCheckpoint(s0, {
      'f1.safetensors': { x: x as Tensors[string] },
      'f2.safetensors': { y: y as Tensors[string] },
    });
    await writeCheckpoint(s1, {
      'f1.safetensors': { y: y as Tensors[string] },
      'f2.safetensors': { x: x as Tensors[string] },
    });
    const n0 = await publish({ checkpoint: s0, version: 'v0', modelId: 'guards/swap' });
    const n1 = await publish({ checkpoint: s1, version: 'v1', modelId: 'guards/swap' });
    expect(n1.get('x:0')?.file_offset).toBe(n0.get('x:0')?.file_offset);
    expect(n1.get('x:0')?.file).not.toBe(n0.get('x:0')?.file);
    const target = join(work, 'swap');
    const adapter = new DirectoryAdapter({ target });
    await land(adapter, createPlan({ ...opts, prev: null, next: n0, checkpointRoot: s0 }), n0);
    await adapter.commit('v0');
    await land(adapter, createPlan({ ...opts, prev: n0, next: n1, checkpointRoot: s1 }), n1);
    for (const f of ['f1.safetensors', 'f2.safetensors']) {
      expect(same(join(target, 'versions/v1', f), join(s1, f)), f).toBe(true);
    }
  });

  it('a new entry of a file this rank holds, whose bucket goes to another rank, fails the finish by name', async () => {
    const target = join(work, 'new-entry-elsewhere');
    const adapter = new DirectoryAdapter({ target, rank: 0 });
    await land(adapter, full, m0);
    await adapter.commit('v0');
    const delta = createPlan({ ...opts, prev: m0, next: m3, checkpointRoot: renamed });
    expect(m3.get('q:0')?.file_offset).toBe(m0.get('b:0')?.file_offset);
    // q (new: the live version has no such entry) lands on rank 1 only.
    const plan: Plan = {
      ...delta,
      buckets: delta.buckets.flatMap((bk) => {
        const q = bk.items.filter((i) => i.key === 'q:0');
        const rest = bk.items.filter((i) => i.key !== 'q:0');
        return [
          ...(rest.length ? [{ ...bk, items: rest, consumer_ranks: [0, 1] }] : []),
          ...(q.length ? [{ ...bk, bucket_id: bk.bucket_id + 1000, items: q, consumer_ranks: [1] }] : []),
        ];
      }),
    };
    const err = await refusal(land(adapter, plan, m3, (bk) => !bk.consumer_ranks.includes(0)));
    expect(err.message).toBe(
      `${target} (rank 0): entry q:0 of model.safetensors is neither in this rank's staged buckets nor unchanged in the live version v0`,
    );
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });
});
