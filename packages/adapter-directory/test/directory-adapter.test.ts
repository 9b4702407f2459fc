import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import { AdapterError, loadConfig, type Manifest, type Plan } from '@hotweights/core';
import { readCommittedManifest } from '@hotweights/manifest';
import { createPlan, publish } from '@hotweights/planner';
import { HostStaging, replicateRank } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomTensors, type Tensors, writeCheckpoint } from './checkpoints.js';

const work = mkdtempSync(join(tmpdir(), 'hw-dir-adapter-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-dir-adapter-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});
// The repository's venv, found from this file (not the working directory): the cross-check below
// must fail when it is missing, not drop out.
const PYTHON = fileURLToPath(new URL('../../../.venv/bin/python', import.meta.url));
const config = loadConfig({});

async function stage(plan: Plan) {
  const staging = await HostStaging.open({ dir: shm });
  const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
  await replicateRank({ plan, rank: 0, worldSize: 1, transport, staging, config });
  await transport.close();
  return staging;
}

async function deploy(adapter: DirectoryAdapter, plan: Plan, manifest: Manifest) {
  const staging = await stage(plan);
  try {
    await adapter.prepare({ plan, manifest, staging });
    await adapter.commit(plan.version);
  } finally {
    await staging.close();
  }
}

function expectSameTree(dir: string, checkpoint: string, files: readonly string[]) {
  for (const f of files) {
    expect(Buffer.compare(readFileSync(join(dir, f)), readFileSync(join(checkpoint, f))), f).toBe(0);
  }
}

describe('DirectoryAdapter', { timeout: 120_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  const names = ['model-00001.safetensors', 'model-00002.safetensors', 'config.json'];
  let m0: Manifest;
  let m1: Manifest;
  let layer: Tensors;

  beforeAll(async () => {
    layer = randomTensors(['layers.0.w', 'layers.0.b', 'layers.1.w'], 32);
    const other = randomTensors(['embed', 'head'], 48);
    await writeCheckpoint(
      base,
      { 'model-00001.safetensors': layer, 'model-00002.safetensors': other },
      { 'config.json': '{"a":1}' },
    );
    // Fine-tune: one tensor of the first file changes; the second file and config stay.
    const tuned = { ...layer, 'layers.0.b': randomTensors(['x'], 32).x as Tensors[string] };
    await writeCheckpoint(
      ft,
      { 'model-00001.safetensors': tuned, 'model-00002.safetensors': other },
      { 'config.json': '{"a":1}' },
    );
    m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'demo/model' });
    m1 = await publish({ checkpoint: ft, version: 'v1', modelId: 'demo/model' });
  });

  it('deploys a full plan, then a delta patched into loadable safetensors, then rolls back', async () => {
    const target = join(work, 'target');
    const state = join(work, 'state');
    const adapter = new DirectoryAdapter({ target, stateDir: state });
    expect(await adapter.currentVersion()).toBeNull();
    const full = createPlan({
      prev: null,
      next: m0,
      checkpointRoot: base,
      nextManifestPath: null,
      bucketBytes: 16 * 1024,
    });
    await deploy(adapter, full, m0);
    expect(await adapter.currentVersion()).toBe('v0');
    expect(readlinkSync(join(target, 'current'))).toBe(join('versions', 'v0'));
    expectSameTree(join(target, 'current'), base, names);

    const delta = createPlan({
      prev: m0,
      next: m1,
      checkpointRoot: ft,
      nextManifestPath: null,
      bucketBytes: 16 * 1024,
    });
    expect(delta.total_bytes).toBeLessThan(delta.checkpoint_bytes / 4);
    await deploy(adapter, delta, m1);
    expect(await adapter.currentVersion()).toBe('v1');
    expect(await adapter.previousVersion()).toBe('v0');
    expectSameTree(join(target, 'current'), ft, names);
    // The unchanged file is shared with the previous version, not copied.
    expect(statSync(join(target, 'versions/v1/model-00002.safetensors')).ino).toBe(
      statSync(join(target, 'versions/v0/model-00002.safetensors')).ino,
    );
    // Any safetensors reader loads the patched file.
    if (!existsSync(PYTHON)) throw new Error(`${PYTHON} is missing: run \`bash scripts/setup-python.sh\``);
    const out = execFileSync(PYTHON, [
      '-c',
      'import sys\nfrom safetensors.numpy import load_file\nt=load_file(sys.argv[1])\nprint(sorted(t), t["layers.0.b"].shape)',
      join(target, 'current/model-00001.safetensors'),
    ]).toString();
    expect(out).toContain("['layers.0.b', 'layers.0.w', 'layers.1.w'] (32, 64)");
    expect((await readCommittedManifest(state, 'demo/model'))?.version).toBe('v1');

    expect(await adapter.rollback()).toBe('v0');
    expectSameTree(join(target, 'current'), base, names);
    expect((await readCommittedManifest(state, 'demo/model'))?.version).toBe('v0');
    expect(await adapter.rollback()).toBe('v1');
    expectSameTree(join(target, 'current'), ft, names);
  });

  it('refuses a delta whose base is not live, leaving the live version untouched', async () => {
    const target = join(work, 'target-refuse');
    const adapter = new DirectoryAdapter({ target });
    const delta = createPlan({
      prev: m0,
      next: m1,
      checkpointRoot: ft,
      nextManifestPath: null,
      bucketBytes: 16 * 1024,
    });
    const staging = await stage(delta);
    await expect(adapter.prepare({ plan: delta, manifest: m1, staging })).rejects.toThrowError(
      /is a delta from v0, but the target holds nothing/,
    );
    await expect(adapter.prepare({ plan: delta, staging })).rejects.toBeInstanceOf(AdapterError);
    await staging.close();
    expect(existsSync(join(target, 'current'))).toBe(false);
    expect(existsSync(join(target, 'versions')) ? readdirSync(join(target, 'versions')) : []).toEqual([]);
  });

  it('aborting a prepared version removes it and keeps the live one', async () => {
    const target = join(work, 'target-abort');
    const adapter = new DirectoryAdapter({ target });
    const full = createPlan({
      prev: null,
      next: m0,
      checkpointRoot: base,
      nextManifestPath: null,
      bucketBytes: 16 * 1024,
    });
    await deploy(adapter, full, m0);
    const delta = createPlan({
      prev: m0,
      next: m1,
      checkpointRoot: ft,
      nextManifestPath: null,
      bucketBytes: 16 * 1024,
    });
    const staging = await stage(delta);
    await adapter.prepare({ plan: delta, manifest: m1, staging });
    await staging.close();
    expect(existsSync(join(target, 'versions/v1'))).toBe(true);
    // A restarted process finds what was prepared on disk (and a fresh adapter object does too).
    expect(await new DirectoryAdapter({ target }).hasVersion('v1')).toBe(true);
    expect(await adapter.hasVersion('v0')).toBe(true);
    expect(await adapter.hasVersion('v9')).toBe(false);
    await adapter.abort('v1');
    expect(await adapter.hasVersion('v1')).toBe(false);
    expect(existsSync(join(target, 'versions/v1'))).toBe(false);
    expect(await adapter.currentVersion()).toBe('v0');
    expectSameTree(join(target, 'current'), base, names);
    await expect(adapter.rollback()).rejects.toThrowError(/nothing to roll back to/);
  });
});
