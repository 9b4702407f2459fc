/**
 * The adapter compliance suite (`@hotweights/compliance/adapter`). Our adapters and
 * third-party ones run it to show they keep the contract in src/adapter.ts: prepare leaves live
 * alone; commit flips atomically (a concurrent reader sees the old or the new version, never a mix
 * or nothing); abort, and a crash between prepare and commit, leave live and previous intact;
 * rollback; a commit prunes only what the adapter made. It is framework-agnostic: one call,
 * `runAdapterCompliance(harness)`, on an empty place, returns a report or throws ComplianceError.
 *
 * The updates are small whole-file versions (sha256 hashes) built here, so the suite needs no
 * checkpoint, codec or transport: a delta changes one file, adds one and leaves others unchanged.
 */
import { createHash } from 'node:crypto';
import {
  type Adapter,
  type AdapterUpdate,
  MANIFEST_SCHEMA,
  type Manifest,
  type ManifestEntry,
  PLAN_SCHEMA,
  PLAN_VERSION,
  type Plan,
  type PlanItem,
  type StagedBucket,
  type StagingAgent,
} from '@hotweights/core';
import { assert, type ComplianceReport, Recorder } from './report.js';

/** A version as a reader sees it: relative path → bytes. */
export type VersionFiles = ReadonlyMap<string, Uint8Array>;

export interface AdapterHarness {
  /**
   * Opens the adapter on its place (a target directory, a server, …), which is empty the first
   * time. Called again to stand for a restarted process: a new object on the same place (an
   * in-memory adapter, whose place is its object, returns the same one).
   */
  open(): Promise<Adapter>;
  /**
   * What a reader of the live version sees now, file by file, read the way a serving process
   * would (the directory adapter: through `current`); null when nothing is live.
   */
  readLive(): Promise<VersionFiles | null>;
  /**
   * Optional: puts something the adapter did not make where it keeps versions and returns a
   * check that it is still there, untouched.
   */
  plantForeign?(): Promise<() => Promise<boolean>>;
  /**
   * Optional, for adapters whose place has a fixed set of entries of fixed sizes (a running
   * model's parameters): entry name → size in bytes (at least three). The suite's versions then
   * change the bytes of these entries only, instead of adding, removing and resizing files.
   */
  readonly fixedEntries?: ReadonlyMap<string, number>;
  /**
   * Optional: turns the suite's update (whole-file items, one bucket in process memory) into the
   * one the adapter takes, e.g. tensor items staged in shared memory. Called before every prepare.
   */
  stage?(update: AdapterUpdate): Promise<AdapterUpdate>;
}

const encoder = new TextEncoder();

/** `size` bytes that say which file of which version they are. */
function content(label: string, size: number): Uint8Array {
  const out = new Uint8Array(size);
  const pattern = encoder.encode(`${label};`);
  for (let i = 0; i < size; i++) out[i] = pattern[i % pattern.length] as number;
  return out;
}

function sha256(bytes: Uint8Array | string): string {
  return createHash('sha256').update(bytes).digest('hex');
}

/** A manifest of whole files (one `file` entry each). */
function fileManifest(version: string, files: VersionFiles): Manifest {
  const paths = [...files.keys()].sort();
  const entries: ManifestEntry[] = paths.map((path) => ({
    key: `${path}:0`,
    tensor: path,
    shard_rank: 0,
    kind: 'file',
    file: path,
    file_offset: 0,
    nbytes: (files.get(path) as Uint8Array).byteLength,
    dtype: null,
    shape: null,
    hash: `sha256:${sha256(files.get(path) as Uint8Array)}`,
  }));
  const byKey = new Map(entries.map((e) => [e.key, e]));
  return {
    schema: MANIFEST_SCHEMA,
    version,
    model_id: 'hotweights-adapter-compliance',
    created_at: '2026-01-01T00:00:00.000Z',
    checkpoint_root: null,
    hash_algo: 'sha256',
    files: entries.map((e) => ({ path: e.file, size: e.nbytes, kind: 'file' as const })),
    size: entries.length,
    total_bytes: entries.reduce((n, e) => n + e.nbytes, 0),
    entry: (i) => entries[i] as ManifestEntry,
    get: (key) => byKey.get(key),
    entriesOfFile: (path) => entries.filter((e) => e.file === path),
    digest: `sha256:${sha256(JSON.stringify([version, entries]))}`,
  };
}

/** Staging that holds one update's bucket in memory. */
class MemoryStaging implements StagingAgent {
  readonly #buckets = new Map<string, StagedBucket>();
  put(version: string, bucketId: number, bytes: Uint8Array): void {
    this.#buckets.set(`${version}/${bucketId}`, { version, bucketId, bytes });
  }
  async allocate(version: string, bucket: { bucket_id: number; size: number }): Promise<StagedBucket> {
    this.put(version, bucket.bucket_id, new Uint8Array(bucket.size));
    return this.get(version, bucket.bucket_id) as StagedBucket;
  }
  get(version: string, bucketId: number): StagedBucket | undefined {
    return this.#buckets.get(`${version}/${bucketId}`);
  }
  list(version: string): readonly StagedBucket[] {
    return [...this.#buckets.values()].filter((b) => b.version === version);
  }
  async release(version: string): Promise<void> {
    for (const b of this.list(version)) this.#buckets.delete(`${version}/${b.bucketId}`);
  }
  async reclaimStale(): Promise<number> {
    return 0;
  }
}

interface Update {
  readonly plan: Plan;
  readonly manifest: Manifest;
  readonly staging: StagingAgent;
}

/** The update from `prev` (null: a full plan) to `next`: changed and new files, one bucket. */
function update(
  version: string,
  files: VersionFiles,
  prev: { name: string; files: VersionFiles } | null,
): Update {
  const manifest = fileManifest(version, files);
  const items: PlanItem[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const e of manifest.files.map((f) => manifest.entriesOfFile(f.path)[0] as ManifestEntry)) {
    const bytes = files.get(e.file) as Uint8Array;
    const old = prev?.files.get(e.file);
    if (old && sha256(old) === sha256(bytes)) continue;
    items.push({ ...e, uri: e.file, offset, kind: 'file' });
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  const bucket = new Uint8Array(offset);
  let at = 0;
  for (const c of chunks) {
    bucket.set(c, at);
    at += c.byteLength;
  }
  const staging = new MemoryStaging();
  staging.put(version, 0, bucket);
  const removed = prev ? [...prev.files.keys()].filter((p) => !files.has(p)).map((p) => `${p}:0`) : [];
  const body = {
    schema: PLAN_SCHEMA,
    plan_version: PLAN_VERSION,
    version,
    prev_version: prev?.name ?? null,
    model_id: manifest.model_id,
    created_at: manifest.created_at,
    hash_algo: 'sha256',
    source: { root: '/nonexistent/hotweights-adapter-compliance', rank: 0 },
    next_manifest: { digest: manifest.digest, path: null },
    bucket_bytes: Math.max(offset, 1),
    alignment: 1,
    total_bytes: offset,
    checkpoint_bytes: manifest.total_bytes,
    world_size: 1,
    buckets: [{ bucket_id: 0, size: offset, consumer_ranks: [0], items }],
    removed,
  } as const;
  return { plan: { ...body, digest: `sha256:${sha256(JSON.stringify(body))}` }, manifest, staging };
}

function same(a: VersionFiles | null, b: VersionFiles): boolean {
  if (!a || a.size !== b.size) return false;
  for (const [path, bytes] of b) {
    const got = a.get(path);
    if (!got || got.byteLength !== bytes.byteLength || sha256(got) !== sha256(bytes)) return false;
  }
  return true;
}

/** The four versions the suite moves through: each delta changes, adds or keeps files. */
function versions(tag: string, fixed?: ReadonlyMap<string, number>): { name: string; files: VersionFiles }[] {
  if (fixed) return fixedVersions(tag, fixed);
  const v1 = new Map([
    ['a.bin', content(`${tag}-a1`, 3000)],
    ['b.bin', content(`${tag}-b1`, 1500)],
    ['sub/c.txt', content(`${tag}-c1`, 17)],
  ]);
  const v2 = new Map([...v1, ['a.bin', content(`${tag}-a2`, 3000)], ['d.bin', content(`${tag}-d2`, 700)]]);
  const v3 = new Map([...v2, ['b.bin', content(`${tag}-b3`, 1500)]]);
  const v4 = new Map([...v2, ['a.bin', content(`${tag}-a4`, 2999)]]);
  v4.delete('sub/c.txt');
  return [v1, v2, v3, v4].map((files, i) => ({ name: `${tag}-v${i + 1}`, files }));
}

/** The same four steps over a fixed set of entries: each delta changes some entries' bytes. */
function fixedVersions(
  tag: string,
  fixed: ReadonlyMap<string, number>,
): { name: string; files: VersionFiles }[] {
  const [a, b, c] = [...fixed.keys()].sort();
  if (c === undefined) throw new Error('fixedEntries needs at least three entries');
  const of = (path: string, n: number): [string, Uint8Array] => [
    path,
    content(`${tag}-${path}-${n}`, fixed.get(path) as number),
  ];
  const v1 = new Map([...fixed.keys()].map((path) => of(path, 1)));
  const v2 = new Map([...v1, of(a as string, 2)]);
  const v3 = new Map([...v2, of(b as string, 3)]);
  const v4 = new Map([...v2, of(a as string, 4), of(c, 4)]);
  return [v1, v2, v3, v4].map((files, i) => ({ name: `${tag}-v${i + 1}`, files }));
}

export async function runAdapterCompliance(harness: AdapterHarness): Promise<ComplianceReport> {
  const r = new Recorder();
  const tag = `compliance-${process.pid}-${Date.now().toString(36)}`;
  const [v1, v2, v3, v4] = versions(tag, harness.fixedEntries) as [
    { name: string; files: VersionFiles },
    { name: string; files: VersionFiles },
    { name: string; files: VersionFiles },
    { name: string; files: VersionFiles },
  ];
  const name = (files: VersionFiles | null): string => {
    if (files === null) return 'nothing';
    return [v1, v2, v3, v4].find((v) => same(files, v.files))?.name ?? 'a mix or a partial version';
  };
  const expectLive = async (
    adapter: Adapter,
    v: { name: string; files: VersionFiles },
    previous?: string,
  ) => {
    const live = await adapter.currentVersion();
    assert(live === v.name, `currentVersion() is ${live}, expected ${v.name}`);
    const seen = name(await harness.readLive());
    assert(seen === v.name, `a reader sees ${seen}, expected ${v.name}`);
    if (previous !== undefined && adapter.previousVersion) {
      const prev = await adapter.previousVersion();
      assert(prev === previous, `previousVersion() is ${prev}, expected ${previous}`);
    }
  };
  const staged = (u: AdapterUpdate) => (harness.stage ? harness.stage(u) : Promise.resolve(u));
  let adapter = await harness.open();

  await r.check('nothing is live on an empty place, and rollback then throws', async () => {
    assert((await adapter.currentVersion()) === null, 'currentVersion() is not null before any commit');
    assert((await harness.readLive()) === null, 'a reader sees a version before any commit');
    const rolled = await adapter.rollback().then(
      () => true,
      () => false,
    );
    assert(!rolled, 'rollback() resolved with nothing to roll back to');
  });
  await r.check('a full update commits', async () => {
    await adapter.prepare(await staged(update(v1.name, v1.files, null)));
    await adapter.commit(v1.name);
    await expectLive(adapter, v1);
  });
  await r.check('prepare leaves the live version untouched', async () => {
    await adapter.prepare(await staged(update(v2.name, v2.files, v1)));
    await expectLive(adapter, v1);
  });
  await r.check(
    'commit flips at once: a concurrent reader sees old or new, never a mix or nothing',
    async () => {
      const seen = new Set<string>();
      let stop = false;
      const reader = (async () => {
        while (!stop) {
          seen.add(name(await harness.readLive()));
          await new Promise((res) => setImmediate(res));
        }
      })();
      try {
        await adapter.commit(v2.name);
      } finally {
        stop = true;
        await reader;
      }
      const wrong = [...seen].filter((s) => s !== v1.name && s !== v2.name);
      assert(wrong.length === 0, `a reader saw ${wrong.join(' and ')} during the commit`);
      await expectLive(adapter, v2, v1.name);
    },
  );
  await r.check('abort leaves live and previous intact, and the aborted version cannot commit', async () => {
    await adapter.prepare(await staged(update(v3.name, v3.files, v2)));
    await adapter.abort(v3.name);
    await expectLive(adapter, v2, v1.name);
    const committed = await adapter.commit(v3.name).then(
      () => true,
      () => false,
    );
    assert(!committed, 'commit() of an aborted version resolved');
    await expectLive(adapter, v2, v1.name);
  });
  await r.check(
    'a crash between prepare and commit leaves live and previous intact; the retry commits',
    async () => {
      await adapter.prepare(await staged(update(v3.name, v3.files, v2)));
      // The process "dies": its adapter object is dropped, a new one opens the same place.
      adapter = await harness.open();
      await expectLive(adapter, v2, v1.name);
      await adapter.prepare(await staged(update(v3.name, v3.files, v2)));
      await adapter.commit(v3.name);
      await expectLive(adapter, v3, v2.name);
    },
  );
  await r.check('rollback makes the previous version live again', async () => {
    const to = await adapter.rollback();
    assert(to === v2.name, `rollback() returned ${to}, expected ${v2.name}`);
    await expectLive(adapter, v2);
  });
  await r.check('a later commit prunes only what the adapter made', async () => {
    const survived = await harness.plantForeign?.();
    await adapter.prepare(await staged(update(v4.name, v4.files, v2)));
    await adapter.commit(v4.name);
    await expectLive(adapter, v4, v2.name);
    if (survived) assert(await survived(), 'something the adapter did not make was removed or changed');
    const to = await adapter.rollback();
    assert(to === v2.name, `rollback() after the commit returned ${to}, expected ${v2.name}`);
    await expectLive(adapter, v2);
  });
  return r.finish(`adapter ${adapter.name}`);
}
