import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type VllmAdapter, vllmAdapterProvider } from '@hotweights/adapter-vllm';
import { loadConfig, type Manifest, type Plan } from '@hotweights/core';
import { createPlan, publish, writePatches } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateOneRank } from './pipeline.js';
import { PYTHON, type StandIn, startStandIn, updateCalls } from './stand-in.js';

const work = mkdtempSync(join(tmpdir(), 'hw-vllm-adapter-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-vllm-adapter-'));
const config = loadConfig({});
type Digests = Record<string, string>;

let server: StandIn;
let digests: { v1: Digests; v2: Digests; v3: Digests };
let m1: Manifest;
let m2: Manifest;
let full: Plan;
let delta: Plan;

beforeAll(async () => {
  execFileSync(PYTHON, [join(import.meta.dirname, 'stand-in/make_checkpoints.py'), work]);
  digests = JSON.parse(readFileSync(join(work, 'digests.json'), 'utf8'));
  m1 = await publish({ checkpoint: join(work, 'v1'), version: 'v1', modelId: 'tiny/llama' });
  m2 = await publish({ checkpoint: join(work, 'v2'), version: 'v2', modelId: 'tiny/llama' });
  const common = { nextManifestPath: null, bucketBytes: 4096 };
  full = createPlan({ prev: null, next: m1, checkpointRoot: join(work, 'v1'), ...common });
  delta = createPlan({ prev: m1, next: m2, checkpointRoot: join(work, 'v2'), ...common });
  server = await startStandIn({ tp: 2, devMode: true });
});

afterAll(async () => {
  await server?.stop();
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

async function adapter(settings: Record<string, string> = {}): Promise<VllmAdapter> {
  const options = { rank: 0, worldSize: 1, config, settings: { url: server.url, ...settings } };
  return (await vllmAdapterProvider.create(options)) as VllmAdapter;
}

const update = (a: VllmAdapter, plan: Plan, manifest: Manifest) => updateOneRank(a, plan, manifest, shm);

const held = () => server.get<Digests>('/standin/digests');
const paused = async () => (await server.get<{ is_paused: boolean }>('/is_paused')).is_paused;

describe('VllmAdapter against a stand-in vLLM server (TP 2)', { timeout: 180_000 }, () => {
  it('commits a full then a delta update byte-exact, pausing around the load, and rolls back', async () => {
    const a = await adapter();
    expect(await a.currentVersion()).toBeNull();
    const first = await update(a, full, m1);
    expect(first.live).toBe('v1');
    expect(await held()).toEqual(digests.v1);

    const before = (await server.get<string[]>('/standin/calls')).length;
    await update(a, delta, m2);
    expect(await held()).toEqual(digests.v2);
    expect(await a.currentVersion()).toBe('v2');
    expect((await server.get<{ weight_version: string }>('/weight_info')).weight_version).toBe('v2');
    const calls = (await server.get<string[]>('/standin/calls')).slice(before);
    // hw_prepare runs while serving; the load happens inside one pause.
    expect(calls).toEqual(updateCalls('v2'));
    expect(await paused()).toBe(false);

    // The workers keep what v2 overwrote: v1 can be re-committed without fetching it (fleet rollback).
    expect(await a.previousVersion()).toBe('v1');
    expect(await a.hasVersion('v1')).toBe(true);
    expect(await a.hasVersion('v0')).toBe(false);
    // A fresh adapter (what `hotweights rollback --adapter vllm` opens) rolls back from the workers' state.
    expect(await (await adapter()).rollback()).toBe('v1');
    expect(await held()).toEqual(digests.v1);
    expect((await server.get<{ weight_version: string }>('/weight_info')).weight_version).toBe('v1');
    // One version back is kept: a second rollback says so, and changes nothing.
    await expect(a.rollback()).rejects.toThrow(/no previous version to roll back to from v1/);
    expect(await a.previousVersion()).toBeNull();
    expect(await held()).toEqual(digests.v1);
  });

  it('one rank failing hw_commit leaves every rank on the previous version and the server resumed', async () => {
    const a = await adapter();
    expect(await a.currentVersion()).toBe('v1');
    await server.post('/standin/faults', { fail: { method: 'hw_commit', rank: 1 } });
    try {
      await expect(update(a, delta, m2)).rejects.toThrow(
        /commit of v2 failed .*every server is back on v1.*injected failure of hw_commit on rank 1/,
      );
    } finally {
      await server.post('/standin/faults', {});
    }
    expect(await held()).toEqual(digests.v1);
    expect(await paused()).toBe(false);
    const info = (await a.info()).flat();
    expect(info.map((r) => r.live_version)).toEqual(['v1', 'v1']);
    expect(info.map((r) => r.prepared)).toEqual([[], []]);
  });

  it('with live-copy, lands patch plans from its host copy of the live tensors, after a rollback too; refuses them without one', async () => {
    const m3 = await publish({ checkpoint: join(work, 'v3'), version: 'v3', modelId: 'tiny/llama' });
    const patches = await writePatches({
      prev: m2,
      next: m3,
      prevRoot: join(work, 'v2'),
      nextRoot: join(work, 'v3'),
      output: join(work, 'v3.patches'),
      maxPatchBytes: 4096,
    });
    const patched = createPlan({
      prev: m2,
      next: m3,
      checkpointRoot: join(work, 'v3'),
      nextManifestPath: null,
      bucketBytes: 4096,
      patches,
    });
    const items = patched.buckets.flatMap((b) => b.items);
    expect(
      items
        .filter((i) => i.patch)
        .map((i) => i.tensor)
        .sort(),
    ).toEqual(['model.layers.0.mlp.down_proj.weight', 'model.layers.1.self_attn.q_proj.weight']);
    expect(patched.total_bytes).toBeLessThan(delta.total_bytes);

    // Without the option the adapter has no live bytes to hand over: refused before anything lands.
    await update(await adapter(), full, m1);
    await update(await adapter(), delta, m2);
    await expect(update(await adapter(), patched, m3)).rejects.toThrow(
      /cannot hand over its live bytes to apply them to: plan without --patches/,
    );
    // With it, a fresh adapter has seen no update yet: it needs a full one first.
    const a = await adapter({ 'live-copy': 'true' });
    await expect(update(a, patched, m3)).rejects.toThrow(/live version has no .*needs a full update/);
    expect(await held()).toEqual(digests.v2);

    await update(a, full, m1);
    await update(a, delta, m2);
    expect((await update(a, patched, m3)).live).toBe('v3');
    expect(await held()).toEqual(digests.v3);
    // Rolled back to v2, the copy is v2's again: the same patches land once more.
    expect(await a.rollback()).toBe('v2');
    expect(await held()).toEqual(digests.v2);
    expect((await update(a, patched, m3)).live).toBe('v3');
    expect(await held()).toEqual(digests.v3);
    // Back on v1 for the tests that follow.
    await update(a, full, m1);
  });

  it('a hung rank hits the commit timeout; the server resumes on the previous version', async () => {
    const a = await adapter({ 'commit-timeout-s': '3' });
    expect(await a.currentVersion()).toBe('v1');
    await server.post('/standin/faults', { hang: { method: 'hw_commit', rank: 1 } });
    try {
      await expect(update(a, delta, m2)).rejects.toMatchObject({
        code: 'HW_TIMEOUT',
        message: expect.stringMatching(/commit of v2 failed .*timed out/),
      });
    } finally {
      await server.post('/standin/faults', {});
    }
    expect(await paused()).toBe(false);
    expect(await held()).toEqual(digests.v1);
  });
});

describe('VllmAdapter against a server without dev mode', { timeout: 180_000 }, () => {
  it('says plainly that vLLM must run with VLLM_SERVER_DEV_MODE=1', async () => {
    const plain = await startStandIn({ tp: 1, devMode: false });
    try {
      const options = { rank: 0, worldSize: 1, config, settings: { url: plain.url } };
      const probe = await vllmAdapterProvider.probe(options);
      expect(probe).toMatchObject({
        available: false,
        reason: expect.stringMatching(/VLLM_SERVER_DEV_MODE=1/),
      });
      const a = (await vllmAdapterProvider.create(options)) as VllmAdapter;
      await expect(update(a, full, m1)).rejects.toThrow(
        /answered 404 .*start vLLM with VLLM_SERVER_DEV_MODE=1/,
      );
    } finally {
      await plain.stop();
    }
  });

  it('refuses bad options with a one-line error naming the option', async () => {
    const options = { rank: 0, worldSize: 1, config };
    await expect(vllmAdapterProvider.create(options)).rejects.toThrow(/--adapter-option url=/);
    await expect(
      vllmAdapterProvider.create({
        ...options,
        settings: { url: 'http://127.0.0.1:1', 'pause-mode': 'later' },
      }),
    ).rejects.toThrow(/pause-mode=later: expected one of wait, abort, keep/);
  });
});

describe('VllmAdapter driving two servers (data parallel)', { timeout: 240_000 }, () => {
  it('flips both together, puts both back when one fails, and rolls both back', async () => {
    const [a, b] = await Promise.all([
      startStandIn({ tp: 1, devMode: true }),
      startStandIn({ tp: 1, devMode: true }),
    ]);
    try {
      const options = { rank: 0, worldSize: 1, config, settings: { url: `${a.url},${b.url}` } };
      const dp = (await vllmAdapterProvider.create(options)) as VllmAdapter;
      const both = async () => Promise.all([a, b].map((s) => s.get<Digests>('/standin/digests')));
      await updateOneRank(dp, full, m1, shm);
      expect(await both()).toEqual([digests.v1, digests.v1]);

      await b.post('/standin/faults', { fail: { method: 'hw_commit', rank: 0 } });
      try {
        await expect(updateOneRank(dp, delta, m2, shm)).rejects.toThrow(
          new RegExp(`commit of v2 failed on ${b.url}; every server is back on v1`),
        );
      } finally {
        await b.post('/standin/faults', {});
      }
      expect(await both()).toEqual([digests.v1, digests.v1]);
      for (const s of [a, b]) {
        expect((await s.get<{ is_paused: boolean }>('/is_paused')).is_paused).toBe(false);
      }

      await updateOneRank(dp, delta, m2, shm);
      expect(await both()).toEqual([digests.v2, digests.v2]);
      expect(await dp.rollback()).toBe('v1');
      expect(await both()).toEqual([digests.v1, digests.v1]);
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
  });
});
