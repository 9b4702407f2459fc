/**
 * End to end over the driver stand-in (a test double of the CUDA driver API over host memory; no
 * GPU ran here): `hotweights replicate --device cuda --world-size 2 --target DIR --commit` stages
 * every bucket in (stand-in) device memory, moves it over CUDA IPC, copies it back to verify and
 * commits byte-identical files; an unopenable handle, a peer dying mid-bucket, an out-of-memory
 * device and bytes corrupted by a device copy each fail with a clear error and leave the previous
 * version live.
 */
import { randomBytes } from 'node:crypto';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan, writeSafetensors } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../../cli/test/run-cli.js';
import { standInEnv } from './stand-in.js';

const work = mkdtempSync(join(tmpdir(), 'hw-cuda-e2e-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-cuda-e2e-'));
const target = join(work, 'target');
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

const FILES = ['model-00001.safetensors', 'model-00002.safetensors', 'config.json'];
const tensor = (rows: number, cols = 256) => ({
  dtype: 'F32',
  shape: [rows, cols],
  data: randomBytes(rows * cols * 4),
});
type Tensors = Record<string, ReturnType<typeof tensor>>;

async function checkpoint(dir: string, files: [Tensors, Tensors]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await writeSafetensors(join(dir, FILES[0] as string), files[0]);
  await writeSafetensors(join(dir, FILES[1] as string), files[1]);
  writeFileSync(join(dir, 'config.json'), '{"layers":2}\n');
}

const manifests = new Map<string, { manifest: Awaited<ReturnType<typeof publish>>; path: string }>();

async function published(dir: string, version: string): Promise<void> {
  const manifest = await publish({ checkpoint: dir, version, modelId: 'test/cuda-e2e' });
  const path = join(work, `${version}.manifest.json`);
  await writeManifest(manifest, path);
  manifests.set(version, { manifest, path });
}

async function planFor(prev: string | null, next: string, dir: string): Promise<string> {
  const n = manifests.get(next) as { manifest: Awaited<ReturnType<typeof publish>>; path: string };
  const plan = createPlan({
    prev: prev ? (manifests.get(prev)?.manifest ?? null) : null,
    next: n.manifest,
    checkpointRoot: dir,
    nextManifestPath: n.path,
    bucketBytes: 256 << 10,
    worldSize: 2,
  });
  const file = join(work, `${next}.plan.json`);
  await writePlan(plan, file);
  return file;
}

function replicate(plan: string, faults: Record<string, string> = {}) {
  const args = ['replicate', '--plan', plan, '--device', 'cuda', '--pinned'];
  return run([...args, '--world-size', '2', '--target', target, '--commit', '--no-metrics'], faults);
}

function run(args: string[], faults: Record<string, string> = {}) {
  return runCli(args, {
    env: {
      HOTWEIGHTS_STAGING_DIR: staging,
      HOTWEIGHTS_STATE_DIR: join(work, 'state'),
      HOTWEIGHTS_SOURCE_ROOTS: work,
      HOTWEIGHTS_TRANSFER_TIMEOUT_S: '60',
      HOTWEIGHTS_IPC_COPY_CHUNK_MB: '0.0625',
      ...standInEnv(faults),
    },
  });
}

function expectLive(version: string, dir: string): void {
  for (const r of [0, 1]) {
    const live = join(target, `rank-${r}`, 'current');
    expect(readlinkSync(live)).toMatch(new RegExp(`versions/${version}$`));
    for (const f of FILES)
      expect(Buffer.compare(readFileSync(join(live, f)), readFileSync(join(dir, f))), f).toBe(0);
  }
}

/** Stand-in device segments whose process is gone (what a crash would leak). */
function deadSegments(): string[] {
  return readdirSync('/dev/shm').filter((n) => {
    const m = /^hwcuda-standin\.(\d+)\./.exec(n);
    if (!m) return false;
    try {
      process.kill(Number(m[1]), 0);
      return false;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === 'ESRCH';
    }
  });
}

describe('hotweights replicate --device cuda over the driver stand-in', { timeout: 240_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  const plans: Record<string, string> = {};
  beforeAll(async () => {
    const first = { 'layers.0.w': tensor(512), 'layers.0.b': tensor(8), 'layers.1.w': tensor(1024) };
    const second = { embed: tensor(1024), head: tensor(256) };
    await checkpoint(base, [first, second]);
    await checkpoint(ft, [
      { ...first, 'layers.1.w': tensor(1024) },
      { ...second, head: tensor(256) },
    ]);
    await published(base, 'v0');
    await published(ft, 'v1');
    plans.full = await planFor(null, 'v0', base);
    plans.delta = await planFor('v0', 'v1', ft);
  });

  it('stages on the device, moves buckets over CUDA IPC, verifies and commits', async () => {
    const r = await replicate(plans.full as string);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(
      /replicated v0 to 2 rank\(s\) over cuda-ipc: \d+ bucket\(s\).* \d+ item\(s\) verified/,
    );
    expect(r.stdout).toMatch(/committed v0 on every rank/);
    expectLive('v0', base);
  });

  it.each([
    [
      'a handle that cannot be opened',
      { CUDA_STANDIN_FAIL_IPC_OPEN: '1' },
      /cannot open the IPC handle of bucket \S+ from rank 0 .*CUDA_ERROR_INVALID_HANDLE/,
    ],
    [
      'a peer dying mid-bucket',
      { CUDA_STANDIN_EXIT_ON_IPC_OPEN: '1' },
      /rank 1 (\(pid \d+\) exited|exited with code 9|died)/,
    ],
    [
      'an out-of-memory device',
      { CUDA_STANDIN_MEM_MB: '0' },
      /--device cuda: device 0 has 0\.0 MiB free, version v1 on rank \d needs \d+\.\d MiB: lower HOTWEIGHTS_BUCKET_MB/,
    ],
    [
      'bytes that land wrong on the device',
      { CUDA_STANDIN_CORRUPT_DTOD: '1' },
      /rank 1: item \S+ \(\S+, bucket \d+\) does not match its hash/,
    ],
  ])('%s fails clearly and commits nothing', async (_what, faults, message) => {
    const r = await replicate(plans.delta as string, faults);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(message);
    expect(r.stderr).toMatch(/nothing was committed, the live version is unchanged \(v0\)/);
    expectLive('v0', base);
  });

  it('on this machine (no NVIDIA driver) --device cuda says why, and transports explains each device transport', async () => {
    const r = await replicate(plans.delta as string, { HOTWEIGHTS_CUDA_LIBRARY: 'libcuda.so.1' });
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(
      /--device cuda: cannot stage in cuda memory here \(cuda-ipc: libcuda\.so\.1 not found \(no NVIDIA driver here\)\); use --device cpu/,
    );
    expectLive('v0', base);
    const t = await run(['transports'], {
      HOTWEIGHTS_CUDA_LIBRARY: 'libcuda.so.1',
    });
    expect(t.code, t.stderr).toBe(0);
    expect(t.stdout).toMatch(
      /cuda-ipc +50 .* unavailable: libcuda\.so\.1 not found \(no NVIDIA driver here\)/,
    );
    // nccl is another package: either installed and saying why it is unavailable, or named as missing.
    expect(t.stdout).toMatch(
      /nccl +40 .* unavailable: \S.*|nccl: not installed \(npm install @hotweights\/transport-nccl\)/,
    );
  });

  it('then commits the delta, and no device segment outlives its process', async () => {
    const r = await replicate(plans.delta as string);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/committed v1 on every rank/);
    expectLive('v1', ft);
    // The peer that died left its segments; the next run's cuInit reclaimed them.
    expect(deadSegments()).toEqual([]);
  });
});
