/**
 * Patch items landing in process (issue #16): stageUpdate over the local transport into the
 * memory adapter (which prepares from staging, so the runtime rebuilds patches into a staging
 * view). A patch that passes its own hash but rebuilds the wrong tensor (a forged plan) is caught
 * before prepare, and the live version stays. Into the directory adapter, which reads the live
 * bytes straight into the rebuilt tensor's place (the patch applies in place there), XOR patches
 * land byte-exact, and a live base that is not the patch's is named and leaves the live file as
 * it was.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import { MemoryAdapter } from '@hotweights/adapter-memory';
import { type Adapter, loadConfig, type Manifest, type Plan } from '@hotweights/core';
import { hashItem } from '@hotweights/manifest';
import { createPlan, publish, writePatches } from '@hotweights/planner';
import { HostStaging, stageUpdate } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, describe, expect, it } from 'vitest';
import { firstStep, nextStep, PATCH_FILES, writeStep } from './patch-checkpoints.js';

const work = mkdtempSync(join(tmpdir(), 'hw-patch-landing-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-patch-landing-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

async function land(plan: Plan, adapter: Adapter, manifest?: Manifest) {
  const config = loadConfig({});
  const staging = await HostStaging.open({ dir: shm });
  const transport = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
  try {
    const update = { plan, rank: 0, worldSize: 1, transport, staging, adapter, config };
    const staged = await stageUpdate(manifest ? { ...update, manifest } : update);
    return await staged.commit();
  } finally {
    await transport.close();
  }
}

describe('patch items into the memory adapter', { timeout: 60_000 }, () => {
  it('rebuilds patched tensors from the live version; a forged patch is caught before prepare', async () => {
    const steps = [firstStep()];
    steps.push(nextStep(steps[0] as ReturnType<typeof firstStep>));
    const manifests = [];
    for (const [n, s] of steps.entries()) {
      await writeStep(join(work, `s${n}`), s);
      manifests.push(
        await publish({ checkpoint: join(work, `s${n}`), version: `v${n}`, modelId: 'test/landing' }),
      );
    }
    const [m0, m1] = manifests as [Awaited<ReturnType<typeof publish>>, Awaited<ReturnType<typeof publish>>];
    const adapter = new MemoryAdapter();
    const common = { bucketBytes: 1 << 20, worldSize: 1 };
    await land(
      createPlan({
        prev: null,
        next: m0,
        checkpointRoot: join(work, 's0'),
        nextManifestPath: null,
        ...common,
      }),
      adapter,
    );
    expect(await adapter.currentVersion()).toBe('v0');

    const patches = await writePatches({
      prev: m0,
      next: m1,
      prevRoot: join(work, 's0'),
      nextRoot: join(work, 's1'),
      output: join(work, 'p1.patches'),
      maxPatchBytes: common.bucketBytes,
    });
    const make = () =>
      createPlan({
        prev: m0,
        next: m1,
        checkpointRoot: join(work, 's1'),
        nextManifestPath: null,
        patches,
        ...common,
      });

    // Forged: one patch's bytes change and its recorded hash with them, so only the rebuilt
    // tensor's hash can tell.
    const plan = make();
    const item = plan.buckets.flatMap((b) => b.items).find((it) => it.key === 'layers.0.w:0');
    const p = item?.patch;
    if (!item || !p) throw new Error('layers.0.w is not a patch item');
    const file = readFileSync(patches.file.path);
    const original = Buffer.from(file);
    file[p.file_offset + item.nbytes - 1] = (file[p.file_offset + item.nbytes - 1] as number) ^ 0x01;
    writeFileSync(patches.file.path, file);
    const hash = hashItem('blake3', [file.subarray(p.file_offset, p.file_offset + item.nbytes)]);
    const forged: Plan = {
      ...plan,
      buckets: plan.buckets.map((b) => ({
        ...b,
        items: b.items.map((it) => (it === item ? { ...it, patch: { ...p, hash } } : it)),
      })),
    };
    await expect(land(forged, adapter)).rejects.toThrowError(
      /rank 0: item layers\.0\.w:0( of v1)?: (the tensor rebuilt from the patch does not match its hash|the patch does not decode)/,
    );
    expect(await adapter.currentVersion()).toBe('v0');

    writeFileSync(patches.file.path, original);
    await land(make(), adapter);
    expect(await adapter.currentVersion()).toBe('v1');
    for (const [name, t] of Object.entries(steps[1] as ReturnType<typeof firstStep>))
      expect(Buffer.compare(Buffer.from(adapter.read(`${name}:0`) as Uint8Array), t.data), name).toBe(0);
  });

  it('applies XOR patches in place into the directory adapter; a live base that is not theirs is named', async () => {
    const first = firstStep();
    // A third of the elements change: every layer tensor is an XOR patch.
    const steps = [first, nextStep(first, 0.3)];
    const manifests: Manifest[] = [];
    for (const [n, s] of steps.entries()) {
      await writeStep(join(work, `x${n}`), s);
      manifests.push(
        await publish({ checkpoint: join(work, `x${n}`), version: `v${n}`, modelId: 'test/xor' }),
      );
    }
    const [m0, m1] = manifests as [Manifest, Manifest];
    const target = join(work, 'xor-target');
    const adapter = new DirectoryAdapter({ target });
    const common = { bucketBytes: 1 << 20, worldSize: 1, nextManifestPath: null };
    await land(
      createPlan({ prev: null, next: m0, checkpointRoot: join(work, 'x0'), ...common }),
      adapter,
      m0,
    );
    const patches = await writePatches({
      prev: m0,
      next: m1,
      prevRoot: join(work, 'x0'),
      nextRoot: join(work, 'x1'),
      output: join(work, 'x1.patches'),
      maxPatchBytes: common.bucketBytes,
    });
    const plan = createPlan({ prev: m0, next: m1, checkpointRoot: join(work, 'x1'), patches, ...common });
    const encodings = plan.buckets.flatMap((b) => b.items).map((it) => it.patch?.encoding);
    expect(encodings.filter((e) => e === 'xor-brotli').length).toBeGreaterThanOrEqual(4);

    // The live copy of the layers' file loses one byte of its first tensor's data.
    const liveFile = join(target, 'current', PATCH_FILES[0] as string);
    const good = readFileSync(liveFile);
    const tampered = Buffer.from(good);
    const dataStart = 8 + Number(tampered.readBigUInt64LE(0));
    tampered[dataStart] = (tampered[dataStart] as number) ^ 0x10;
    writeFileSync(liveFile, tampered);
    await expect(land(plan, adapter, m1)).rejects.toThrowError(
      /rank 0: item layers\.\S+ of v1: the live base does not match the patch's base/,
    );
    expect(await adapter.currentVersion()).toBe('v0');
    expect(Buffer.compare(readFileSync(liveFile), tampered)).toBe(0);

    writeFileSync(liveFile, good);
    // The right base but a wrong expected hash: the patch applied in place overwrote the base, so
    // telling which went wrong reads the live bytes again, and they are the patch's base.
    const xorItem = plan.buckets.flatMap((b) => b.items).find((it) => it.patch?.encoding === 'xor-brotli');
    if (!xorItem) throw new Error('no XOR patch item');
    const wrong: Plan = {
      ...plan,
      buckets: plan.buckets.map((b) => ({
        ...b,
        items: b.items.map((it) => (it === xorItem ? { ...it, hash: `blake3:${'0'.repeat(64)}` } : it)),
      })),
    };
    await expect(land(wrong, adapter, m1)).rejects.toThrowError(
      /rank 0: item \S+ of v1: the tensor rebuilt from the patch does not match its hash/,
    );
    expect(await adapter.currentVersion()).toBe('v0');
    await land(plan, adapter, m1);
    expect(await adapter.currentVersion()).toBe('v1');
    for (const name of PATCH_FILES)
      expect(
        Buffer.compare(readFileSync(join(target, 'current', name)), readFileSync(join(work, 'x1', name))),
        name,
      ).toBe(0);
  });
});
