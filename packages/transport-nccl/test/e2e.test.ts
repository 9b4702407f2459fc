/**
 * End to end over the stand-in device libraries (test doubles of NCCL and the CUDA runtime; no
 * GPU): `hotweights replicate --transport nccl` starts 3 local ranks that meet at
 * MASTER_ADDR/MASTER_PORT, broadcast every bucket host -> device -> NCCL -> device -> host, verify
 * and commit into directory targets. A rank killed mid-bucket fails the job with nothing committed.
 */
import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan, writeSafetensors } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli } from '../../cli/test/run-cli.js';
import { freePort } from '../../transport-ucx/test/ranks.js';
import { buildStandins } from './standin.js';

const standins = buildStandins();
const work = mkdtempSync(join(tmpdir(), 'hw-nccl-e2e-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-nccl-e2e-'));
const target = join(work, 'target');
afterAll(() => {
  standins.remove();
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

const FILES = ['model-00001.safetensors', 'model-00002.safetensors', 'config.json'];
const tensor = (rows: number) => ({ dtype: 'F32', shape: [rows, 256], data: randomBytes(rows * 256 * 4) });
type Tensors = Record<string, ReturnType<typeof tensor>>;

async function version(name: string, first: Tensors, second: Tensors) {
  const dir = join(work, name);
  mkdirSync(dir, { recursive: true });
  await writeSafetensors(join(dir, FILES[0] as string), first);
  await writeSafetensors(join(dir, FILES[1] as string), second);
  writeFileSync(join(dir, 'config.json'), '{"layers":2}\n');
  const manifest = await publish({ checkpoint: dir, version: name, modelId: 'test/nccl-e2e' });
  const path = join(work, `${name}.manifest.json`);
  await writeManifest(manifest, path);
  return { dir, manifest, path };
}

type Version = Awaited<ReturnType<typeof version>>;

async function plan(prev: Version | null, next: Version, bucketBytes: number): Promise<string> {
  const file = join(work, `${next.manifest.version}.plan.json`);
  await writePlan(
    createPlan({
      prev: prev?.manifest ?? null,
      next: next.manifest,
      checkpointRoot: next.dir,
      nextManifestPath: next.path,
      bucketBytes,
      worldSize: 3,
    }),
    file,
  );
  return file;
}

function expectTree(dir: string, checkpoint: string) {
  for (const f of FILES)
    expect(Buffer.compare(readFileSync(join(dir, f)), readFileSync(join(checkpoint, f))), `${dir}/${f}`).toBe(
      0,
    );
}

async function replicate(planFile: string, extra: Record<string, string> = {}) {
  return runCli(
    ['replicate', '--plan', planFile, '--transport', 'nccl', '--commit', '--target', target, '--no-metrics'],
    {
      env: {
        ...standins.env,
        HOTWEIGHTS_STAGING_DIR: staging,
        HOTWEIGHTS_STATE_DIR: join(work, 'state'),
        HOTWEIGHTS_SOURCE_ROOTS: work,
        HOTWEIGHTS_TRANSFER_TIMEOUT_S: '30',
        HOTWEIGHTS_NCCL_CHUNK_MB: '1',
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(await freePort()),
        ...extra,
      },
      timeoutMs: 120_000,
    },
  );
}

describe('hotweights replicate --transport nccl over the stand-ins', { timeout: 240_000 }, () => {
  const v: Record<string, Version> = {};
  const plans: Record<string, string> = {};
  beforeAll(async () => {
    // The CLI discovers installed transports through package.json, which points at dist/.
    const built = spawnSync('npx', ['tsc', '-b', 'packages/transport-nccl'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(built.status, built.stdout + built.stderr).toBe(0);
    const first = { 'layers.0.w': tensor(512), 'layers.0.b': tensor(8), 'layers.1.w': tensor(512) };
    const second = { embed: tensor(1024), head: tensor(256) };
    v.v0 = await version('v0', first, second);
    v.v1 = await version('v1', { ...first, 'layers.1.w': tensor(512) }, second);
    // 32 MiB of changed tensors in 1 MiB buckets: long enough to kill a rank in the middle.
    v.v2 = await version(
      'v2',
      { ...first, 'layers.1.w': tensor(16384) },
      { embed: tensor(16384), head: tensor(256) },
    );
    plans.full = await plan(null, v.v0, 1 << 20);
    plans.delta = await plan(v.v0, v.v1, 1 << 20);
    plans.big = await plan(v.v1, v.v2, 1 << 20);
  });

  it('commits a full plan, then a delta, byte-identical at every rank', async () => {
    const full = await replicate(plans.full as string);
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toMatch(/replicated v0 to 3 rank\(s\) over nccl: .* item\(s\) verified/);
    for (const r of [0, 1, 2]) expectTree(join(target, `rank-${r}`, 'current'), v.v0?.dir as string);
    const delta = await replicate(plans.delta as string);
    expect(delta.code, delta.stderr).toBe(0);
    expect(delta.stdout).toMatch(/replicated v1 to 3 rank\(s\) over nccl/);
    expect(delta.stdout).toMatch(/committed v1 on every rank/);
    for (const r of [0, 1, 2]) expectTree(join(target, `rank-${r}`, 'current'), v.v1?.dir as string);
  });

  it('a rank killed mid-bucket fails the job before the deadline and nothing is committed', async () => {
    // The stand-in NCCL SIGKILLs rank 2 once 5 MiB of broadcast bytes reached it.
    const failed = await replicate(plans.big as string, {
      STANDIN_FAULT_RANK: '2',
      STANDIN_NCCL_EXIT_AFTER_BYTES: String(5 << 20),
    });
    expect(failed.code).not.toBe(0);
    expect(failed.stderr).toMatch(
      /update v2 failed: .*; nothing was committed, the live version is unchanged \(v1\)/,
    );
    expect(failed.stderr).toMatch(/rank 2/);
    expect(failed.stderr).not.toMatch(/did not finish within/);
    for (const r of [0, 1, 2]) {
      expectTree(join(target, `rank-${r}`, 'current'), v.v1?.dir as string);
      expect(readlinkSync(join(target, `rank-${r}`, 'current'))).toMatch(/versions\/v1$/);
    }
  });
});
