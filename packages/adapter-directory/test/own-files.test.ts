/** The directory adapter touches only what it made, and keeps the source's file modes. */
import { spawnSync } from 'node:child_process';
import {
  chmodSync,
  cpSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import { hasErrorCode, type Manifest, type Plan } from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, writeCheckpoint } from './checkpoints.js';
import { deployScratch } from './deploy.js';

const { work, deploy } = deployScratch('hw-dir-own-');

const mode = (path: string) => statSync(path).mode & 0o777;

describe('DirectoryAdapter: only its own files', { timeout: 120_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  let m0: Manifest;
  let m1: Manifest;
  let full: Plan;
  let delta: Plan;

  beforeAll(async () => {
    const tensors = randomTensors(['w', 'b'], 16);
    await writeCheckpoint(
      base,
      { 'model.safetensors': tensors },
      { 'run.sh': '#!/bin/sh\necho hi\n', 'config.json': '{}' },
    );
    await writeCheckpoint(
      ft,
      { 'model.safetensors': { ...tensors, b: randomTensors(['x'], 16).x as (typeof tensors)[string] } },
      { 'run.sh': '#!/bin/sh\necho hi\n', 'config.json': '{}', 'tool.sh': '#!/bin/sh\n' },
    );
    chmodSync(join(base, 'run.sh'), 0o755);
    chmodSync(join(base, 'config.json'), 0o600);
    chmodSync(join(ft, 'run.sh'), 0o755);
    chmodSync(join(ft, 'config.json'), 0o640);
    chmodSync(join(ft, 'tool.sh'), 0o750);
    m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'own/model' });
    m1 = await publish({ checkpoint: ft, version: 'v1', modelId: 'own/model' });
    full = createPlan({
      prev: null,
      next: m0,
      checkpointRoot: base,
      nextManifestPath: null,
      bucketBytes: 8192,
    });
    delta = createPlan({ prev: m0, next: m1, checkpointRoot: ft, nextManifestPath: null, bucketBytes: 8192 });
  });

  it("keeps the source's file modes: an executable stays executable, through a full plan and a delta", async () => {
    const target = join(work, 'modes');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full, m0);
    expect(mode(join(target, 'current/run.sh'))).toBe(0o755);
    expect(mode(join(target, 'current/config.json'))).toBe(0o600);
    await deploy(adapter, delta, m1);
    expect(mode(join(target, 'current/run.sh'))).toBe(0o755);
    expect(mode(join(target, 'current/tool.sh'))).toBe(0o750);
    // Unchanged bytes, changed mode: the new version gets a copy, the previous keeps its mode.
    expect(mode(join(target, 'current/config.json'))).toBe(0o640);
    expect(mode(join(target, 'versions/v0/config.json'))).toBe(0o600);
  });

  it('leaves a foreign folder in versions/ alone through commits, and refuses a version name it took', async () => {
    const target = join(work, 'foreign');
    mkdirSync(join(target, 'versions/other-tool'), { recursive: true });
    writeFileSync(join(target, 'versions/other-tool/data.bin'), 'not ours');
    // A leftover that looks like one of ours but has no record: not ours either.
    mkdirSync(join(target, 'versions/v9.partial-1-abcdef'));
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full, m0);
    await deploy(adapter, delta, m1);
    expect(readFileSync(join(target, 'versions/other-tool/data.bin'), 'utf8')).toBe('not ours');
    expect(existsSync(join(target, 'versions/v9.partial-1-abcdef'))).toBe(true);

    const taken = join(work, 'taken');
    mkdirSync(join(taken, 'versions/v0'), { recursive: true });
    writeFileSync(join(taken, 'versions/v0/keep.txt'), 'mine');
    const refused = await deploy(new DirectoryAdapter({ target: taken }), full, m0).catch((e: unknown) => e);
    expect(hasErrorCode(refused, 'HW_ADAPTER_FOREIGN')).toBe(true);
    expect((refused as Error).message).toContain(
      `${join(taken, 'versions/v0')} exists but was not made by hotweights`,
    );
    expect(readdirSync(join(taken, 'versions/v0'))).toEqual(['keep.txt']);
  });

  it('refuses a versions/ symlink and leaves what is behind it untouched', async () => {
    const elsewhere = join(work, 'elsewhere');
    mkdirSync(join(elsewhere, 'precious'), { recursive: true });
    writeFileSync(join(elsewhere, 'precious/weights.bin'), 'keep me');
    const target = join(work, 'linked');
    mkdirSync(target);
    symlinkSync(elsewhere, join(target, 'versions'));
    const refused = await deploy(new DirectoryAdapter({ target }), full, m0).catch((e: unknown) => e);
    expect(hasErrorCode(refused, 'HW_ADAPTER_FOREIGN')).toBe(true);
    expect((refused as Error).message).toContain(
      `${join(target, 'versions')} is a symlink (to ${elsewhere})`,
    );
    expect(readdirSync(elsewhere)).toEqual(['precious']);
    expect(readFileSync(join(elsewhere, 'precious/weights.bin'), 'utf8')).toBe('keep me');
    expect(existsSync(join(target, 'current'))).toBe(false);
  });

  it('removes a crashed preparation only when it is its own', async () => {
    const target = join(work, 'crashed');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full, m0);
    // What a process killed during prepare leaves: the folder and the adapter's record of it.
    const own = 'v1.partial-999999-0a0b0c';
    mkdirSync(join(target, 'versions', own));
    writeFileSync(join(target, '.hotweights/partials', own), '999999\n');
    await deploy(adapter, delta, m1);
    expect(existsSync(join(target, 'versions', own))).toBe(false);
    expect(existsSync(join(target, '.hotweights/partials', own))).toBe(false);
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v0', 'v1']);
  });

  /** A finished version `name` (a copy of v0) and its records, prepared by `pid` (none: an older release's record). */
  const abandon = (target: string, name: string, pid: number | undefined) => {
    cpSync(join(target, 'versions/v0'), join(target, 'versions', name), { recursive: true });
    writeFileSync(
      join(target, '.hotweights', `${name}.json`),
      JSON.stringify({
        version: name,
        manifest_digest: m0.digest,
        ...(pid === undefined ? {} : { prepared_by: pid }),
      }),
    );
    cpSync(
      join(target, '.hotweights/v0.manifest.json'),
      join(target, '.hotweights', `${name}.manifest.json`),
    );
  };
  /** A preparation folder of `pid`'s and the adapter's record of it, as a process killed mid-prepare leaves. */
  const partial = (target: string, pid: number, tag: string) => {
    const name = `v1.partial-${pid}-${tag}`;
    mkdirSync(join(target, 'versions', name));
    writeFileSync(join(target, '.hotweights/partials', name), `${pid}\n`);
    return name;
  };
  const gone = () => spawnSync('true').pid as number;

  it('a version prepared by a process that is gone and never made live is removed by the next prepare', async () => {
    const target = join(work, 'abandoned');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full, m0);
    // What a rank killed between its prepare and its discard leaves: a finished version and its records.
    abandon(target, 'v8', gone());
    // Prepared by processes that are alive (this one, the one that started it): they may still commit.
    abandon(target, 'v9', process.pid);
    abandon(target, 'v10', process.ppid);
    // A record without the preparing process (an older release's): nothing says it was abandoned.
    abandon(target, 'v7', undefined);
    const dead = partial(target, gone(), '0a0b0c');
    const alive = partial(target, process.ppid, '0d0e0f');
    await adapter.beginPrepare({ plan: delta, manifest: m1 }).then((p) => p.discard());
    expect(existsSync(join(target, 'versions/v8'))).toBe(false);
    expect(existsSync(join(target, '.hotweights/v8.json'))).toBe(false);
    expect(existsSync(join(target, '.hotweights/v8.manifest.json'))).toBe(false);
    for (const kept of ['v7', 'v9', 'v10'])
      expect(existsSync(join(target, 'versions', kept)), kept).toBe(true);
    // Reclaimed when preparing starts, not only when a later commit prunes.
    expect(existsSync(join(target, 'versions', dead))).toBe(false);
    expect(existsSync(join(target, '.hotweights/partials', dead))).toBe(false);
    expect(existsSync(join(target, 'versions', alive))).toBe(true);
    expect(await adapter.currentVersion()).toBe('v0');
  });

  it('keeps the live and the previous version when the process that prepared them has exited', async () => {
    const target = join(work, 'restarted');
    const adapter = new DirectoryAdapter({ target });
    await deploy(adapter, full, m0);
    await deploy(adapter, delta, m1);
    // A worker that made both has since exited (a restart): its pid is on their records.
    const pid = gone();
    for (const v of ['v0', 'v1']) {
      const record = join(target, '.hotweights', `${v}.json`);
      writeFileSync(
        record,
        JSON.stringify({ ...JSON.parse(readFileSync(record, 'utf8')), prepared_by: pid }),
      );
    }
    const m2 = await publish({ checkpoint: base, version: 'v2', modelId: 'own/model' });
    const next = createPlan({
      prev: m1,
      next: m2,
      checkpointRoot: base,
      nextManifestPath: null,
      bucketBytes: 8192,
    });
    await new DirectoryAdapter({ target })
      .beginPrepare({ plan: next, manifest: m2 })
      .then((p) => p.discard());
    expect(readdirSync(join(target, 'versions')).sort()).toEqual(['v0', 'v1']);
    expect(await adapter.currentVersion()).toBe('v1');
    expect(readFileSync(join(target, 'current/config.json'), 'utf8')).toBe('{}');
  });
});
