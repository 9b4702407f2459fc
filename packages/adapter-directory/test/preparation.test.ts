/**
 * The preparation of a version (src/preparation.ts), fed bucket by bucket from the checkpoint as a
 * rank's staging would: what each file is made of (a link to the live file, the live file patched,
 * a new file filled from the live version), the version's record, and the errors that name what is
 * missing. Every failure must leave no partial folder and no record of one.
 */
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  truncateSync,
  writeFileSync,
} from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import type { Manifest, Plan, PlanBucket, PlanItem } from '@hotweights/core';
import { serializeManifest } from '@hotweights/manifest';
import { createPlan, publish } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, type Tensors, writeCheckpoint } from './checkpoints.js';
import { bytesOf, land, landedIn, openUnder, refusal, same } from './feed.js';

const work = mkdtempSync(join(tmpdir(), 'hw-dir-prep-'));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const ino = (p: string) => statSync(p).ino;
const mode = (p: string) => statSync(p).mode & 0o777;
const FILES = ['config.json', 'model.safetensors', 'other.safetensors', 'split.safetensors'];

describe('DirectoryPreparation', { timeout: 120_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  const moved = join(work, 'moved');
  let m0: Manifest;
  let m1: Manifest;
  let m2: Manifest;
  let full: Plan;
  let patch: Plan;
  let shift: Plan;
  const grown = join(work, 'grown');
  let m3: Manifest;
  let grow: Plan;
  const opts = { nextManifestPath: null, bucketBytes: 8192 };

  beforeAll(async () => {
    const model = randomTensors(['a', 'b', 'c'], 16);
    const files: Record<string, Tensors> = {
      'model.safetensors': model,
      'other.safetensors': randomTensors(['o'], 16),
      // 16 KiB: split over two 8 KiB buckets.
      'split.safetensors': randomTensors(['p'], 64),
    };
    await writeCheckpoint(base, files, { 'config.json': '{"base":1}' });
    // v1: one tensor of model changed (same layout: the live file patched); config.json's mode differs.
    await writeCheckpoint(
      ft,
      { ...files, 'model.safetensors': { ...model, b: randomTensors(['x'], 16).x as Tensors[string] } },
      { 'config.json': '{"base":1}' },
    );
    chmodSync(join(base, 'config.json'), 0o644);
    chmodSync(join(ft, 'config.json'), 0o600);
    // v2: a shrinks and c grows by as much, so b keeps its bytes but moves inside a file of the same size.
    const [a12, c20] = [randomTensors(['a'], 12).a, randomTensors(['c'], 20).c] as Tensors[string][];
    await writeCheckpoint(
      moved,
      {
        ...files,
        'model.safetensors': {
          a: a12 as Tensors[string],
          b: model.b as Tensors[string],
          c: c20 as Tensors[string],
        },
      },
      { 'config.json': '{"base":1}' },
    );
    chmodSync(join(moved, 'config.json'), 0o644);
    // v3: c grows (a longer file whose a and b keep their place) and a new file appears.
    await writeCheckpoint(
      grown,
      { ...files, 'model.safetensors': { ...model, c: c20 as Tensors[string] } },
      { 'config.json': '{"base":1}', 'extra.json': '{"new":true}' },
    );
    chmodSync(join(grown, 'config.json'), 0o644);
    m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'prep/model' });
    m1 = await publish({ checkpoint: ft, version: 'v1', modelId: 'prep/model' });
    m2 = await publish({ checkpoint: moved, version: 'v2', modelId: 'prep/model' });
    full = createPlan({ ...opts, prev: null, next: m0, checkpointRoot: base });
    patch = createPlan({ ...opts, prev: m0, next: m1, checkpointRoot: ft });
    shift = createPlan({ ...opts, prev: m0, next: m2, checkpointRoot: moved });
    m3 = await publish({ checkpoint: grown, version: 'v3', modelId: 'prep/model' });
    grow = createPlan({ ...opts, prev: m0, next: m3, checkpointRoot: grown });
  });

  /** A target with v0 live. */
  const withV0 = (name: string) => landedIn(join(work, name), full, m0);

  const keyOf = (m: Manifest, file: string, tensor: string) =>
    m.entriesOfFile(file).find((e) => e.key.startsWith(`${tensor}:`))?.key as string;
  const carries = (key: string) => (b: PlanBucket) => b.items.some((i) => i.key === key);
  /** Of model.safetensors' entries left out with the bucket carrying `key`, the first the finish checks. */
  const firstLeftOut = (m: Manifest, plan: Plan, key: string) => {
    const bucket = plan.buckets.find(carries(key)) as PlanBucket;
    const e = m.entriesOfFile('model.safetensors').find((x) => carries(x.key)(bucket));
    return e?.key as string;
  };

  it('a full version fed bucket by bucket: the checkpoint byte for byte, its record and manifest, nothing partial left', async () => {
    const target = join(work, 'full');
    const adapter = new DirectoryAdapter({ target });
    const prep = await adapter.beginPrepare({ plan: full, manifest: m0 });
    expect(readdirSync(join(target, 'versions'))).toEqual([expect.stringMatching(/^v0\.partial-/)]);
    for (const b of full.buckets) await prep.bucket(b, bytesOf(full, b));
    await prep.finish();
    const dir = join(target, 'versions/v0');
    expect(readdirSync(dir).sort()).toEqual(FILES);
    for (const f of FILES) expect(same(join(dir, f), join(base, f)), f).toBe(true);
    expect(mode(join(dir, 'config.json'))).toBe(0o644);
    expect(JSON.parse(readFileSync(join(target, '.hotweights/v0.json'), 'utf8'))).toEqual({
      version: 'v0',
      manifest_digest: m0.digest,
      prepared_by: process.pid,
    });
    expect(readFileSync(join(target, '.hotweights/v0.manifest.json'), 'utf8')).toBe(serializeManifest(m0));
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);

    // Finished: no more writes, and a discard after the finish keeps the version.
    const [b0] = full.buckets as [PlanBucket];
    expect((await refusal(prep.bucket(b0, bytesOf(full, b0)))).message).toBe(
      `${target}: the preparation is finished`,
    );
    expect((await refusal(prep.finish())).message).toBe(`${target}: the preparation is finished`);
    const fh = await open(join(base, 'config.json'), 'r');
    try {
      const item = b0.items[0] as PlanItem;
      expect((await refusal(prep.copyItem(item, { file: fh, offset: item.file_offset }))).message).toBe(
        `${target}: the preparation is finished`,
      );
    } finally {
      await fh.close();
    }
    await prep.discard();
    expect(readdirSync(dir).sort()).toEqual(FILES);
    await adapter.commit('v0');
    expect(await adapter.currentVersion()).toBe('v0');
  });

  it('an entry no bucket carried fails the finish naming the entry, its file and the live version; nothing is left', async () => {
    const target = join(work, 'missing');
    const adapter = new DirectoryAdapter({ target });
    const key = firstLeftOut(m0, full, keyOf(m0, 'model.safetensors', 'b'));
    const prep = await adapter.beginPrepare({ plan: full, manifest: m0 });
    for (const b of full.buckets) if (!carries(key)(b)) await prep.bucket(b, bytesOf(full, b));
    const err = await refusal(prep.finish());
    expect(err.name).toBe('AdapterError');
    expect(err.message).toBe(
      `${target}: entry ${key} of model.safetensors is neither in this rank's staged buckets nor unchanged in the live version (none)`,
    );
    expect(err.details).toEqual({ key, file: 'model.safetensors' });
    expect(readdirSync(join(target, 'versions'))).toEqual([]);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
    expect(existsSync(join(target, '.hotweights/v0.json'))).toBe(false);
    // Discarded: refuses more work, and a second discard is harmless.
    const [b0] = full.buckets as [PlanBucket];
    expect((await refusal(prep.bucket(b0, bytesOf(full, b0)))).message).toBe(
      `${target}: the preparation is discarded`,
    );
    await prep.discard();

    // In a delta, the changed entry missing names the live version it is not unchanged in.
    const live = await withV0('missing-delta');
    const changed = firstLeftOut(m1, patch, keyOf(m1, 'model.safetensors', 'b'));
    const delta = await refusal(land(live.adapter, patch, m1, carries(changed)));
    expect(delta.message).toBe(
      `${live.target}: entry ${changed} of model.safetensors is neither in this rank's staged buckets nor unchanged in the live version v0`,
    );
    expect(readdirSync(join(live.target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(live.target, '.hotweights/partials'))).toEqual([]);
    expect(await live.adapter.currentVersion()).toBe('v0');
  });

  it('a split tensor with a part missing is named with the bytes that landed', async () => {
    const target = join(work, 'part');
    const adapter = new DirectoryAdapter({ target });
    const parts = full.buckets.flatMap((b) => b.items).filter((i) => i.part);
    expect(parts.length).toBeGreaterThan(1);
    const last = parts.at(-1) as PlanItem;
    const key = last.key;
    const err = await refusal(
      land(adapter, full, m0, (b) =>
        b.items.some((i) => i.key === key && i.part?.index === last.part?.index),
      ),
    );
    const whole = last.part?.tensor_nbytes as number;
    expect(err.message).toBe(
      `${target}: item ${key} of v0: only ${whole - last.nbytes} of ${whole} bytes are staged (a part is missing)`,
    );
    expect(err.details).toEqual({ key });
    expect(readdirSync(join(target, 'versions'))).toEqual([]);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });

  it('a delta: unchanged files are links to the live ones, a changed file is the live file patched, a changed mode is a copy', async () => {
    const { target, adapter } = await withV0('patch');
    const live = join(target, 'versions/v0');
    await land(adapter, patch, m1);
    const dir = join(target, 'versions/v1');
    for (const f of FILES) expect(same(join(dir, f), join(ft, f)), f).toBe(true);
    expect(ino(join(dir, 'other.safetensors'))).toBe(ino(join(live, 'other.safetensors')));
    expect(ino(join(dir, 'split.safetensors'))).toBe(ino(join(live, 'split.safetensors')));
    expect(ino(join(dir, 'model.safetensors'))).not.toBe(ino(join(live, 'model.safetensors')));
    // config.json did not change but its mode did: the new version's copy has the source's mode.
    expect(ino(join(dir, 'config.json'))).not.toBe(ino(join(live, 'config.json')));
    expect(mode(join(dir, 'config.json'))).toBe(0o600);
    // The live version is untouched.
    expect(mode(join(live, 'config.json'))).toBe(0o644);
    for (const f of FILES) expect(same(join(live, f), join(base, f)), f).toBe(true);
    await adapter.commit('v1');
    expect(await adapter.currentVersion()).toBe('v1');
  });

  it('a delta where an unchanged tensor moved inside a file of the same size: its bytes come from the live version', async () => {
    const { target, adapter } = await withV0('moved');
    expect(statSync(join(moved, 'model.safetensors')).size).toBe(
      statSync(join(base, 'model.safetensors')).size,
    );
    const b = keyOf(m2, 'model.safetensors', 'b');
    expect(m2.get(b)?.file_offset).not.toBe(m0.get(b)?.file_offset);
    expect(shift.buckets.some(carries(b))).toBe(false);
    await land(adapter, shift, m2);
    for (const f of FILES) expect(same(join(target, 'versions/v2', f), join(moved, f)), f).toBe(true);
    expect(ino(join(target, 'versions/v2/config.json'))).toBe(ino(join(target, 'versions/v0/config.json')));
  });

  it('a live file shorter than its manifest says fails the finish by name; live stays', async () => {
    const { target, adapter } = await withV0('short');
    const prep = await adapter.beginPrepare({ plan: shift, manifest: m2 });
    for (const bk of shift.buckets) await prep.bucket(bk, bytesOf(shift, bk));
    truncateSync(join(target, 'versions/v0/model.safetensors'), 64);
    const err = await refusal(prep.finish());
    expect(err.message).toBe(`${target}: live file model.safetensors is shorter than its manifest says`);
    expect((err as Error & { cause?: { code?: string } }).cause?.code).toBe('ESHORT');
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
    expect(await adapter.currentVersion()).toBe('v0');
  });

  it('refuses items that do not fit the manifest, naming them', async () => {
    const { target, adapter } = await withV0('items');
    const prep = await adapter.beginPrepare({ plan: patch, manifest: m1 });
    const [bk] = patch.buckets as [PlanBucket];
    const item = bk.items[0] as PlanItem;
    const bytes = bytesOf(patch, bk);
    const stray = { ...bk, items: [{ ...item, key: 'nope:0' }] };
    expect((await refusal(prep.bucket(stray, bytes))).message).toBe(
      `${target}: plan item nope:0 is not in the manifest of v1 (${m1.digest})`,
    );
    expect((await refusal(prep.bucket(stray, bytes))).details).toEqual({ key: 'nope:0' });
    const short = { ...bk, items: [{ ...item, nbytes: item.nbytes - 1 }] };
    const sizeErr = await refusal(prep.bucket(short, bytes));
    expect(sizeErr.message).toBe(
      `${target}: staged item ${item.key} has ${item.nbytes - 1} bytes, the manifest says ${item.nbytes}`,
    );
    expect(sizeErr.details).toEqual({ key: item.key });
    // other.safetensors did not change: it is a link to the live file and takes no writes.
    const linked = full.buckets
      .flatMap((b) => b.items)
      .find((i) => i.uri === 'other.safetensors') as PlanItem;
    const into = { ...bk, size: linked.offset + linked.nbytes, items: [linked] };
    expect((await refusal(prep.bucket(into, new Uint8Array(into.size)))).message).toBe(
      `${target}: no file other.safetensors is being prepared for ${linked.key}`,
    );
    await prep.discard();
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
    expect(same(join(target, 'versions/v0/other.safetensors'), join(base, 'other.safetensors'))).toBe(true);
  });

  it('a failure while recording the version is wrapped naming the version; the partial folder is removed', async () => {
    const target = join(work, 'record-fails');
    const adapter = new DirectoryAdapter({ target });
    const prep = await adapter.beginPrepare({ plan: full, manifest: m0 });
    for (const b of full.buckets) await prep.bucket(b, bytesOf(full, b));
    // Something in the way of the manifest record: a directory of that name.
    mkdirSync(join(target, '.hotweights/v0.manifest.json'));
    const err = await refusal(prep.finish());
    expect(err.name).toBe('AdapterError');
    expect(err.message).toMatch(new RegExp(`^${target}: cannot prepare v0: EISDIR`));
    expect((err as Error & { cause?: { code?: string } }).cause?.code).toBe('EISDIR');
    expect(readdirSync(join(target, 'versions'))).toEqual([]);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });

  it('a leftover folder of an aborted attempt at the same version is replaced', async () => {
    const target = join(work, 'leftover');
    const adapter = new DirectoryAdapter({ target });
    const prep = await adapter.beginPrepare({ plan: full, manifest: m0 });
    for (const b of full.buckets) await prep.bucket(b, bytesOf(full, b));
    const left = join(target, 'versions/v0');
    mkdirSync(left);
    writeFileSync(join(left, 'model.safetensors'), 'half-written');
    writeFileSync(join(left, 'stale.bin'), 'x');
    await prep.finish();
    expect(readdirSync(left).sort()).toEqual(FILES);
    for (const f of FILES) expect(same(join(left, f), join(base, f)), f).toBe(true);
  });

  /** `p` with the items of `file` in buckets of their own, consumed by `ranks` (the rest by 0 and 1). */
  const apart = (p: Plan, file: string, ranks: number[], pick = (i: PlanItem) => i.uri === file): Plan => ({
    ...p,
    buckets: p.buckets.flatMap((b) => {
      const theirs = b.items.filter(pick);
      const ours = b.items.filter((i) => !pick(i));
      return [
        ...(ours.length ? [{ ...b, items: ours, consumer_ranks: [0, 1] }] : []),
        ...(theirs.length
          ? [{ ...b, bucket_id: b.bucket_id + 10_000, items: theirs, consumer_ranks: ranks }]
          : []),
      ];
    }),
  });

  it('a rank holds only the files with entries it consumes, and its record lists them', async () => {
    const target = join(work, 'rank');
    const adapter = new DirectoryAdapter({ target, rank: 0 });
    const plan = apart(full, 'split.safetensors', [1]);
    const prep = await adapter.beginPrepare({ plan, manifest: m0 });
    for (const b of plan.buckets) if (b.consumer_ranks.includes(0)) await prep.bucket(b, bytesOf(plan, b));
    // A bucket of the other rank's file sent here anyway is refused by name.
    const theirs = plan.buckets.find((b) => !b.consumer_ranks.includes(0)) as PlanBucket;
    const key = theirs.items[0]?.key;
    expect((await refusal(prep.bucket(theirs, bytesOf(plan, theirs)))).message).toBe(
      `${target} (rank 0): no file split.safetensors is being prepared for ${key}`,
    );
    await prep.finish();
    const held = FILES.filter((f) => f !== 'split.safetensors');
    expect(readdirSync(join(target, 'versions/v0')).sort()).toEqual(held);
    for (const f of held) expect(same(join(target, 'versions/v0', f), join(base, f)), f).toBe(true);
    expect(JSON.parse(readFileSync(join(target, '.hotweights/v0.json'), 'utf8'))).toEqual({
      version: 'v0',
      manifest_digest: m0.digest,
      files: held,
      prepared_by: process.pid,
    });
    await adapter.commit('v0');
    // The next delta keeps this rank's share: unchanged files linked, the other rank's file still absent.
    const delta = apart(patch, 'split.safetensors', [1]);
    await land(adapter, delta, m1, (b) => !b.consumer_ranks.includes(0));
    expect(readdirSync(join(target, 'versions/v1')).sort()).toEqual(held);
    for (const f of held) expect(same(join(target, 'versions/v1', f), join(ft, f)), f).toBe(true);
    expect(ino(join(target, 'versions/v1/other.safetensors'))).toBe(
      ino(join(target, 'versions/v0/other.safetensors')),
    );
  });

  it('a changed entry of a file this rank holds but whose bucket goes to another rank fails the finish by name', async () => {
    const target = join(work, 'not-delivered');
    const adapter = new DirectoryAdapter({ target, rank: 0 });
    await land(adapter, full, m0);
    await adapter.commit('v0');
    // Every planned item of model.safetensors (the changed b) goes to rank 1 only.
    const plan = apart(patch, 'model.safetensors', [1]);
    const b = keyOf(m1, 'model.safetensors', 'b');
    expect(
      patch.buckets
        .flatMap((x) => x.items)
        .filter((i) => i.uri === 'model.safetensors')
        .map((i) => i.key),
    ).toEqual([b]);
    const err = await refusal(land(adapter, plan, m1, (x) => !x.consumer_ranks.includes(0)));
    expect(err.message).toBe(
      `${target} (rank 0): entry ${b} of model.safetensors is neither in this rank's staged buckets nor unchanged in the live version v0`,
    );
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });

  it('a source that is not on this host: unchanged files are still links and keep the live modes', async () => {
    const { target, adapter } = await withV0('remote');
    const remote: Plan = { ...patch, source: { ...patch.source, root: join(work, 'not-here') } };
    const prep = await adapter.beginPrepare({ plan: remote, manifest: m1 });
    for (const b of patch.buckets) await prep.bucket(b, bytesOf(patch, b));
    await prep.finish();
    const dir = join(target, 'versions/v1');
    for (const f of FILES) expect(same(join(dir, f), join(ft, f)), f).toBe(true);
    for (const f of ['config.json', 'other.safetensors']) {
      expect(ino(join(dir, f)), f).toBe(ino(join(target, 'versions/v0', f)));
    }
    expect(mode(join(dir, 'config.json'))).toBe(0o644);
  });

  it('a delta that lengthens a file and adds one: unchanged tensors come from the live version; a new entry missing is named', async () => {
    const { target, adapter } = await withV0('grown');
    expect(statSync(join(grown, 'model.safetensors')).size).toBeGreaterThan(
      statSync(join(base, 'model.safetensors')).size,
    );
    await land(adapter, grow, m3);
    const dir = join(target, 'versions/v3');
    for (const f of [...FILES, 'extra.json']) expect(same(join(dir, f), join(grown, f)), f).toBe(true);
    expect(ino(join(dir, 'model.safetensors'))).not.toBe(ino(join(target, 'versions/v0/model.safetensors')));

    const other = await withV0('grown-missing');
    const plan = apart(grow, 'extra.json', [0]);
    const extra = m3.entriesOfFile('extra.json')[0]?.key as string;
    const err = await refusal(
      land(other.adapter, plan, m3, (b) => b.items.some((i) => i.uri === 'extra.json')),
    );
    expect(err.message).toBe(
      `${other.target}: entry ${extra} of extra.json is neither in this rank's staged buckets nor unchanged in the live version v0`,
    );
    expect(readdirSync(join(other.target, 'versions'))).toEqual(['v0']);
  });

  it('leaves no file open, whether the version is finished or refused', async () => {
    const { target, adapter } = await withV0('fds');
    await land(adapter, shift, m2);
    expect(openUnder(target)).toEqual([]);
    // A patched file (its live file read by the up-front copy) and a rebuilt one with two entries
    // copied from one live file.
    for (const [name, plan, m] of [
      ['fds-patch', patch, m1],
      ['fds-grow', grow, m3],
    ] as const) {
      const t = await withV0(name);
      await land(t.adapter, plan, m);
      expect(openUnder(t.target), name).toEqual([]);
    }
    const other = await withV0('fds-refused');
    const prep = await other.adapter.beginPrepare({ plan: shift, manifest: m2 });
    for (const bk of shift.buckets) await prep.bucket(bk, bytesOf(shift, bk));
    truncateSync(join(other.target, 'versions/v0/model.safetensors'), 64);
    await refusal(prep.finish());
    expect(openUnder(other.target)).toEqual([]);
    expect(openUnder(target)).toEqual([]);
  });

  it('a full plan over a live version writes every file anew and leaves the live one alone', async () => {
    const { target, adapter } = await withV0('full-over-live');
    const again = createPlan({ ...opts, prev: null, next: m1, checkpointRoot: ft });
    await land(adapter, again, m1);
    const dir = join(target, 'versions/v1');
    for (const f of FILES) {
      expect(same(join(dir, f), join(ft, f)), f).toBe(true);
      expect(same(join(target, 'versions/v0', f), join(base, f)), f).toBe(true);
    }
    expect(mode(join(dir, 'config.json'))).toBe(0o600);
  });

  it('a live file cut short before a patch is refused by the bucket that lands in it; nothing is left', async () => {
    const { target, adapter } = await withV0('cut');
    truncateSync(join(target, 'versions/v0/model.safetensors'), 64);
    const prep = await adapter.beginPrepare({ plan: patch, manifest: m1 });
    const bk = patch.buckets.find((b) => b.items.some((i) => i.uri === 'model.safetensors')) as PlanBucket;
    const err = await refusal(prep.bucket(bk, bytesOf(patch, bk)));
    expect(err.message).toMatch(/the source file ends before the range$/);
    expect(err.code).toBe('ESHORT');
    await prep.discard();
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });

  it('a rank that gets only some entries of a file it never held is refused naming an entry it lacks', async () => {
    const target = join(work, 'part-of-file');
    const adapter = new DirectoryAdapter({ target, rank: 0 });
    const c = keyOf(m0, 'model.safetensors', 'c');
    const plan = apart(full, 'model.safetensors', [1], (i) => i.key === c);
    const err = await refusal(land(adapter, plan, m0, (b) => !b.consumer_ranks.includes(0)));
    expect(err.message).toBe(
      `${target} (rank 0): entry ${c} of model.safetensors is neither in this rank's staged buckets nor unchanged in the live version (none)`,
    );
    expect(readdirSync(join(target, 'versions'))).toEqual([]);
  });

  it('discarding mid-way removes the partial folder and its record; the live version stays', async () => {
    const { target, adapter } = await withV0('discard');
    const prep = await adapter.beginPrepare({ plan: patch, manifest: m1 });
    const [bk] = patch.buckets as [PlanBucket];
    await prep.bucket(bk, bytesOf(patch, bk));
    await prep.discard();
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
    expect(await adapter.currentVersion()).toBe('v0');
    for (const f of FILES) expect(same(join(target, 'versions/v0', f), join(base, f)), f).toBe(true);
  });
});
