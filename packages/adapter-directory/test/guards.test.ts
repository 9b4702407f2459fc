/**
 * The directory adapter's refusals and bookkeeping, each asserted the way a user meets it: the
 * wrong manifest, a delta from a version that is not live, a version already live, an abort of
 * what is live or not ours, records that do not match, a staging that lacks a bucket.
 */
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import { hasErrorCode, type Manifest, type Plan } from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { HostStaging } from '@hotweights/runtime';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, writeCheckpoint } from './checkpoints.js';
import { deployScratch } from './deploy.js';

const { work, shm, deploy } = deployScratch('hw-dir-guards-');

async function refusal(p: Promise<unknown>): Promise<Error> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  if (!(err instanceof Error)) throw new Error('expected a refusal');
  return err;
}

describe('DirectoryAdapter guards', { timeout: 180_000 }, () => {
  const m: Manifest[] = [];
  let full0: Plan;
  let full1: Plan;
  let delta01: Plan;
  let delta12: Plan;

  beforeAll(async () => {
    const w = randomTensors(['w'], 16);
    for (let v = 0; v < 3; v++) {
      const dir = join(work, `ckpt-${v}`);
      await writeCheckpoint(
        dir,
        { 'model.safetensors': { ...w, b: randomTensors(['b'], 16).b as (typeof w)[string] } },
        { 'config.json': `{"v":${v}}` },
      );
      m.push(await publish({ checkpoint: dir, version: `v${v}`, modelId: 'guards/model' }));
    }
    const plan = (prev: Manifest | null, next: Manifest, v: number) =>
      createPlan({
        prev,
        next,
        checkpointRoot: join(work, `ckpt-${v}`),
        nextManifestPath: null,
        bucketBytes: 8192,
      });
    full0 = plan(null, m[0] as Manifest, 0);
    full1 = plan(null, m[1] as Manifest, 1);
    delta01 = plan(m[0] as Manifest, m[1] as Manifest, 1);
    delta12 = plan(m[1] as Manifest, m[2] as Manifest, 2);
  });

  it('refuses a missing or mismatched manifest, naming the target and rank', async () => {
    const target = join(work, 'manifest');
    const adapter = new DirectoryAdapter({ target, rank: 3 });
    expect(adapter.name).toBe('directory');
    const none = await refusal(adapter.beginPrepare({ plan: full0 }));
    expect(none.message).toBe(
      `${target} (rank 3): the directory adapter needs the next version's manifest (--manifest-next, or a plan whose next_manifest.path exists)`,
    );
    const otherVersion = await refusal(adapter.beginPrepare({ plan: full0, manifest: m[1] as Manifest }));
    expect(otherVersion.message).toContain(
      `manifest v1 (${m[1]?.digest}) is not the one plan v0 was made for`,
    );
    // Same version name, other content: the digest tells them apart.
    const sameName = { ...(m[1] as Manifest), version: 'v0' } as Manifest;
    const otherDigest = await refusal(adapter.beginPrepare({ plan: full0, manifest: sameName }));
    expect(otherDigest.message).toContain('is not the one plan v0 was made for');
    // Refused before anything was written.
    expect(existsSync(target)).toBe(false);
  });

  it('refuses a delta from a version that is not the live one, and a version already live', async () => {
    const target = join(work, 'delta');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full0, m[0] as Manifest);
    const wrongBase = await refusal(adapter.beginPrepare({ plan: delta12, manifest: m[2] as Manifest }));
    expect(wrongBase.message).toBe(
      `${target}: plan v2 is a delta from v1, but the target holds v0; make a full plan (no --prev) or deploy v1 first`,
    );
    const again = await refusal(adapter.beginPrepare({ plan: full0, manifest: m[0] as Manifest }));
    expect(again.message).toBe(`${target}: version v0 is already live`);
    expect(await adapter.currentVersion()).toBe('v0');
    expect(readdirSync(join(target, 'versions'))).toEqual(['v0']);
  });

  it('records a preparation with its pid before writing, and discards it', async () => {
    const target = join(work, 'record');
    const adapter = new DirectoryAdapter({ target });
    const prep = await adapter.beginPrepare({ plan: full0, manifest: m[0] as Manifest });
    const [record] = readdirSync(join(target, '.hotweights/partials'));
    expect(record).toMatch(new RegExp(`^v0\\.partial-${process.pid}-[0-9a-f]{6}$`));
    expect(readFileSync(join(target, '.hotweights/partials', record as string), 'utf8')).toBe(
      `${process.pid}\n`,
    );
    await prep.discard();
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });

  it('a staging that lacks a bucket fails the preparation with a named error and leaves nothing', async () => {
    const target = join(work, 'lacking');
    const adapter = new DirectoryAdapter({ target });
    const staging = await HostStaging.open({ dir: shm });
    try {
      const err = await refusal(adapter.prepare({ plan: full0, manifest: m[0] as Manifest, staging }));
      expect(err.name).toBe('AdapterError');
      expect(err.message).toContain(
        "entry model.safetensors:0 of model.safetensors is neither in this rank's staged buckets",
      );
    } finally {
      await staging.close();
    }
    expect(await adapter.hasVersion('v0')).toBe(false);
    expect(readdirSync(join(target, 'versions'))).toEqual([]);
    expect(readdirSync(join(target, '.hotweights/partials'))).toEqual([]);
  });

  it('hasVersion trusts only a matching record and a real folder', async () => {
    const target = join(work, 'has');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full0, m[0] as Manifest);
    expect(await adapter.hasVersion('v0')).toBe(true);
    const record = join(target, '.hotweights/v0.json');
    const good = readFileSync(record, 'utf8');
    writeFileSync(record, JSON.stringify({ ...JSON.parse(good), version: 'other' }));
    expect(await adapter.hasVersion('v0')).toBe(false);
    writeFileSync(record, '{not json');
    expect(await adapter.hasVersion('v0')).toBe(false);
    writeFileSync(record, good);
    // A record whose folder is gone (removed by hand): not here.
    mkdirSync(join(target, 'versions/v7'));
    writeFileSync(
      join(target, '.hotweights/v8.json'),
      JSON.stringify({ version: 'v8', manifest_digest: 'x' }),
    );
    expect(await adapter.hasVersion('v8')).toBe(false);
    writeFileSync(join(target, 'versions/v8'), 'a file, not a folder');
    expect(await adapter.hasVersion('v8')).toBe(false);
  });

  it('commit: refuses an unprepared version, re-committing the live one changes nothing', async () => {
    const target = join(work, 'commit');
    // The plans here are for one rank: an adapter of rank 0 holds all of each version.
    const adapter = new DirectoryAdapter({ target, rank: 0 });
    expect(await adapter.currentPath()).toBeNull();
    const err = await refusal(adapter.commit('v5'));
    expect(err.message).toBe(`${target} (rank 0): version v5 was not prepared`);
    await deploy(adapter, full0, m[0] as Manifest);
    await deploy(adapter, delta01, m[1] as Manifest);
    // A unit check (seconds, not milliseconds), not a timing assertion.
    expect(adapter.lastSwitchSeconds).toBeGreaterThanOrEqual(0);
    expect(adapter.lastSwitchSeconds).toBeLessThan(30);
    expect(await adapter.currentPath()).toBe(join(target, 'versions/v1'));
    await adapter.commit('v1');
    expect(await adapter.currentVersion()).toBe('v1');
    expect(await adapter.previousVersion()).toBe('v0');
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v0', 'v1']);
    await adapter.rollback();
    expect(adapter.lastSwitchSeconds).toBeLessThan(30);
    expect(await adapter.currentVersion()).toBe('v0');
  });

  it('abort never removes the live or previous version, nor a folder it did not make', async () => {
    const target = join(work, 'abort');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full0, m[0] as Manifest);
    await deploy(adapter, delta01, m[1] as Manifest);
    await adapter.abort('v1');
    await adapter.abort('v0');
    expect(await adapter.hasVersion('v1')).toBe(true);
    expect(await adapter.hasVersion('v0')).toBe(true);
    mkdirSync(join(target, 'versions/v9'));
    writeFileSync(join(target, 'versions/v9/theirs.bin'), 'theirs');
    await adapter.abort('v9');
    expect(readFileSync(join(target, 'versions/v9/theirs.bin'), 'utf8')).toBe('theirs');
  });

  it('a first commit removes a stale previous link; a full plan over a target replaces the live one', async () => {
    const target = join(work, 'stale');
    mkdirSync(join(target, 'versions'), { recursive: true });
    symlinkSync('versions/gone', join(target, 'previous'));
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full0, m[0] as Manifest);
    expect(readdirSync(target).sort()).toEqual(['.hotweights', 'current', 'versions']);
    await deploy(adapter, full1, m[1] as Manifest);
    expect(await adapter.previousVersion()).toBe('v0');
  });

  it('refuses a current that is not a symlink, and names the code for a versions/ that is a file', async () => {
    const target = join(work, 'odd');
    mkdirSync(join(target, 'current'), { recursive: true });
    const adapter = new DirectoryAdapter({ target });
    await expect(adapter.currentVersion()).rejects.toThrow(/EINVAL/);
    const fileTarget = join(work, 'odd-file');
    mkdirSync(fileTarget);
    writeFileSync(join(fileTarget, 'versions'), 'x');
    const err = await refusal(deploy(new DirectoryAdapter({ target: fileTarget }), full0, m[0] as Manifest));
    expect(hasErrorCode(err, 'HW_ADAPTER_FOREIGN')).toBe(true);
    expect((err as Error & { details: unknown }).details).toEqual({ entry: join(fileTarget, 'versions') });
    expect(err.message).toContain(`${join(fileTarget, 'versions')} is not a directory`);
  });

  it('finishes a half-removed version: prune and abort tolerate records or folders already gone', async () => {
    const target = join(work, 'half');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full0, m[0] as Manifest);
    expect(await adapter.previousVersion()).toBeNull();
    await deploy(adapter, delta01, m[1] as Manifest);
    // An earlier prune or a user removed part of v0's bookkeeping.
    rmSync(join(target, '.hotweights/v0.manifest.json'));
    await deploy(adapter, delta12, m[2] as Manifest);
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v1', 'v2']);
    expect(readdirSync(join(target, '.hotweights')).filter((n) => n.startsWith('v0'))).toEqual([]);
    // A version recorded as ours whose folder and manifest are gone: abort removes the record.
    writeFileSync(
      join(target, '.hotweights/v5.json'),
      JSON.stringify({ version: 'v5', manifest_digest: 'x' }),
    );
    await adapter.abort('v5');
    expect(existsSync(join(target, '.hotweights/v5.json'))).toBe(false);
  });

  it('works from what is left when current was removed by hand: abort, rollback, a named error', async () => {
    const target = join(work, 'no-current');
    const adapter = new DirectoryAdapter({ target });
    await adapter.abort('v0'); // nothing there: nothing to do
    await deploy(adapter, full0, m[0] as Manifest);
    await deploy(adapter, delta01, m[1] as Manifest);
    rmSync(join(target, 'current'));
    expect(await adapter.rollback()).toBe('v0');
    expect(readFileSync(join(target, 'current/config.json'), 'utf8')).toBe('{"v":0}');
    // current pointing at a version without a record: refused, naming both.
    rmSync(join(target, 'current'));
    symlinkSync('versions/zz', join(target, 'current'));
    await expect(adapter.currentVersion()).rejects.toThrow(
      `${target}: current points at versions/zz but its record is unreadable`,
    );
  });

  it('wraps a file-system failure while preparing into a named error; a foreign version folder is named', async () => {
    const target = join(work, 'fs-fail');
    mkdirSync(join(target, '.hotweights'), { recursive: true });
    writeFileSync(join(target, '.hotweights/partials'), 'a file where the partials folder goes');
    const err = await refusal(
      new DirectoryAdapter({ target }).beginPrepare({ plan: full0, manifest: m[0] as Manifest }),
    );
    expect(err.name).toBe('AdapterError');
    expect(err.message).toMatch(new RegExp(`^${target}: cannot prepare v0: .*(EEXIST|ENOTDIR)`));
    const taken = join(work, 'taken');
    mkdirSync(join(taken, 'versions/v0'), { recursive: true });
    const foreign = await refusal(
      new DirectoryAdapter({ target: taken }).beginPrepare({ plan: full0, manifest: m[0] as Manifest }),
    );
    expect((foreign as Error & { details: unknown }).details).toEqual({ entry: join(taken, 'versions/v0') });
  });
});
