/**
 * End to end: `mpirun -n 3 hotweights replicate --plan … --verify --commit` picks the mpi
 * transport and delivers byte-identical files to every rank; a rank killed mid-broadcast fails
 * the job and nothing is committed.
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan, writeSafetensors } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MPI_ENV, mpirun, REPO_ROOT, SOURCE_NODE_ARGS } from './mpirun.js';

const CLI = join(REPO_ROOT, 'packages/cli/src/bin.ts');
const work = mkdtempSync(join(tmpdir(), 'hw-mpi-e2e-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-mpi-e2e-'));
const target = join(work, 'target');
const env = {
  HOTWEIGHTS_STAGING_DIR: staging,
  HOTWEIGHTS_STATE_DIR: join(work, 'state'),
  HOTWEIGHTS_SOURCE_ROOTS: work, // published in-process: nothing recorded
  HOTWEIGHTS_TRANSFER_TIMEOUT_S: '30',
  HOTWEIGHTS_MPI_CHUNK_MB: '1',
};
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

/** A checkpoint of two safetensors files and a config; `big` rows per large tensor. */
async function checkpoint(dir: string, tensors: Record<string, ReturnType<typeof tensor>>[]): Promise<void> {
  mkdirSync(dir, { recursive: true });
  await writeSafetensors(
    join(dir, FILES[0] as string),
    tensors[0] as Record<string, ReturnType<typeof tensor>>,
  );
  await writeSafetensors(
    join(dir, FILES[1] as string),
    tensors[1] as Record<string, ReturnType<typeof tensor>>,
  );
  writeFileSync(join(dir, 'config.json'), '{"layers":2}\n');
}

const manifests = new Map<string, { manifest: Awaited<ReturnType<typeof publish>>; path: string }>();

async function published(checkpointDir: string, version: string) {
  const manifest = await publish({ checkpoint: checkpointDir, version, modelId: 'test/mpi-e2e' });
  const path = join(work, `${version}.manifest.json`);
  await writeManifest(manifest, path);
  manifests.set(version, { manifest, path });
}

async function planFor(prev: string | null, next: string, checkpointDir: string, bucketBytes: number) {
  const n = manifests.get(next) as { manifest: Awaited<ReturnType<typeof publish>>; path: string };
  const plan = createPlan({
    prev: prev ? (manifests.get(prev)?.manifest ?? null) : null,
    next: n.manifest,
    checkpointRoot: checkpointDir,
    nextManifestPath: n.path,
    bucketBytes,
    worldSize: 3,
  });
  const file = join(work, `${next}.plan.json`);
  await writePlan(plan, file);
  return file;
}

function expectTree(dir: string, checkpointDir: string) {
  for (const f of FILES)
    expect(
      Buffer.compare(readFileSync(join(dir, f)), readFileSync(join(checkpointDir, f))),
      `${dir}/${f}`,
    ).toBe(0);
}

const replicate = (plan: string, extra: string[] = []) => [
  'node',
  ...SOURCE_NODE_ARGS,
  CLI,
  'replicate',
  '--plan',
  plan,
  '--verify',
  '--commit',
  '--target',
  target,
  '--no-metrics',
  ...extra,
];

describe('mpirun -n 3 hotweights replicate over the mpi transport', { timeout: 240_000 }, () => {
  const base = join(work, 'base');
  const ft = join(work, 'ft');
  const big = join(work, 'big');
  const plans: Record<string, string> = {};
  beforeAll(async () => {
    // The CLI discovers installed transports through package.json, which points at dist/.
    const built = spawnSync('npx', ['tsc', '-b', 'packages/transport-mpi'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(built.status, built.stdout + built.stderr).toBe(0);
    const first = { 'layers.0.w': tensor(512), 'layers.0.b': tensor(8), 'layers.1.w': tensor(512) };
    const second = { embed: tensor(1024), head: tensor(256) };
    await checkpoint(base, [first, second]);
    await checkpoint(ft, [{ ...first, 'layers.1.w': tensor(512) }, second]);
    // 32 MiB of changed tensors in 256 KiB buckets: long enough to kill a rank in the middle.
    await checkpoint(big, [
      { ...first, 'layers.1.w': tensor(16384) },
      { embed: tensor(16384), head: tensor(256) },
    ]);
    await published(base, 'v0');
    await published(ft, 'v1');
    await published(big, 'v2');
    plans.full = await planFor(null, 'v0', base, 1 << 20);
    plans.delta = await planFor('v0', 'v1', ft, 1 << 20);
    plans.big = await planFor('v1', 'v2', big, 256 << 10);
  });

  it('commits a full plan, then a delta, byte-identical at every rank', async () => {
    const full = await mpirun(3, replicate(plans.full as string), { cwd: REPO_ROOT, env });
    expect(full.code, full.stderr).toBe(0);
    expect(full.stdout).toMatch(/replicated v0 to 3 rank\(s\) over mpi/);
    for (const r of [0, 1, 2]) expectTree(join(target, `rank-${r}`, 'current'), base);

    const delta = await mpirun(3, replicate(plans.delta as string), { cwd: REPO_ROOT, env });
    expect(delta.code, delta.stderr).toBe(0);
    expect(delta.stdout).toMatch(/replicated v1 to 3 rank\(s\) over mpi/);
    expect(delta.stdout).toMatch(/committed v1 on every rank/);
    for (const r of [0, 1, 2]) expectTree(join(target, `rank-${r}`, 'current'), ft);
  });

  it('a rank killed mid-broadcast fails the job and nothing is committed', async () => {
    const child = spawn(
      'mpirun',
      ['-n', '3', '--oversubscribe', ...replicate(plans.big as string, ['--rank-events'])],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...MPI_ENV, ...env },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let stdout = '';
    let stderr = '';
    let killed: number | undefined;
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
      // At the first bucket any rank reports, kill rank 2 (found among mpirun's children).
      if (killed === undefined && /"type":"progress"/.test(d)) {
        killed = rankPid(child.pid as number, 2);
        if (killed) process.kill(killed, 'SIGKILL');
      }
    });
    const code = await new Promise<number | null>((res) => child.on('close', (c) => res(c)));
    expect(killed).toBeDefined();
    expect(code).not.toBe(0);
    expect(stderr).toMatch(/process rank 2 with PID \d+ on node \S+ exited on signal 9/);
    expect(stdout).not.toMatch(/"type":"done"/);
    // Every rank still serves v1; v2 never went live anywhere.
    for (const r of [0, 1, 2]) expectTree(join(target, `rank-${r}`, 'current'), ft);
    for (const r of [0, 1, 2])
      expect(readlinkSync(join(target, `rank-${r}`, 'current'))).toMatch(/versions\/v1$/);
  });
});

/** The pid of the given MPI rank among the children of an mpirun process. */
function rankPid(mpirunPid: number, rank: number): number | undefined {
  const children = readFileSync(`/proc/${mpirunPid}/task/${mpirunPid}/children`, 'utf8').trim().split(/\s+/);
  for (const pid of children.filter(Boolean).map(Number)) {
    try {
      const environ = readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0');
      if (environ.includes(`OMPI_COMM_WORLD_RANK=${rank}`)) return pid;
    } catch {
      // exited meanwhile
    }
  }
  return undefined;
}
