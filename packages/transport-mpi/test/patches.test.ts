/**
 * Patch items (issue #16) under a real `mpirun -n 2 hotweights replicate`: a full plan, then a
 * plan whose changed layers move as patches, land byte-exact in every rank's directory target.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePatches, writePlan } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { firstStep, nextStep, PATCH_FILES, writeStep } from '../../cli/test/patch-checkpoints.js';
import { mpirun, REPO_ROOT, SOURCE_NODE_ARGS } from './mpirun.js';

const CLI = join(REPO_ROOT, 'packages/cli/src/bin.ts');
const work = mkdtempSync(join(tmpdir(), 'hw-mpi-patches-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-mpi-patches-'));
const target = join(work, 'target');
const env = {
  HOTWEIGHTS_STAGING_DIR: staging,
  HOTWEIGHTS_STATE_DIR: join(work, 'state'),
  HOTWEIGHTS_SOURCE_ROOTS: work,
  HOTWEIGHTS_TRANSFER_TIMEOUT_S: '30',
  HOTWEIGHTS_MPI_CHUNK_MB: '1',
};
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

describe('patch items over the mpi transport', { timeout: 240_000 }, () => {
  const plans: string[] = [];
  beforeAll(async () => {
    const built = spawnSync('npx', ['tsc', '-b', 'packages/transport-mpi'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
    });
    expect(built.status, built.stdout + built.stderr).toBe(0);
    const s0 = firstStep();
    const s1 = nextStep(s0);
    const manifests = [];
    for (const [n, s] of [s0, s1].entries()) {
      const dir = join(work, `step-${n}`);
      await writeStep(dir, s);
      const m = await publish({ checkpoint: dir, version: `v${n}`, modelId: 'test/mpi-patches' });
      await writeManifest(m, join(work, `m${n}.json`));
      manifests.push(m);
    }
    const [m0, m1] = manifests as [Awaited<ReturnType<typeof publish>>, Awaited<ReturnType<typeof publish>>];
    const common = { bucketBytes: 64 << 10, worldSize: 2 };
    const patches = await writePatches({
      prev: m0,
      next: m1,
      prevRoot: join(work, 'step-0'),
      nextRoot: join(work, 'step-1'),
      output: join(work, 'p1.patches'),
      maxPatchBytes: common.bucketBytes,
    });
    expect(patches.patches.size).toBe(4);
    for (const [n, plan] of [
      createPlan({
        prev: null,
        next: m0,
        checkpointRoot: join(work, 'step-0'),
        nextManifestPath: join(work, 'm0.json'),
        ...common,
      }),
      createPlan({
        prev: m0,
        next: m1,
        checkpointRoot: join(work, 'step-1'),
        nextManifestPath: join(work, 'm1.json'),
        patches,
        ...common,
      }),
    ].entries()) {
      plans.push(join(work, `plan-${n}.json`));
      await writePlan(plan, plans[n] as string);
    }
  });

  it('commits a full plan, then patches, byte-exact on both ranks', async () => {
    for (const [n, plan] of plans.entries()) {
      const job = await mpirun(
        2,
        [
          'node',
          ...SOURCE_NODE_ARGS,
          CLI,
          'replicate',
          '--plan',
          plan,
          '--commit',
          '--target',
          target,
          '--no-metrics',
        ],
        { cwd: REPO_ROOT, env },
      );
      expect(job.code, job.stderr).toBe(0);
      expect(job.stdout).toMatch(new RegExp(`replicated v${n} to 2 rank\\(s\\) over mpi`));
      for (const rank of [0, 1])
        for (const f of PATCH_FILES)
          expect(
            Buffer.compare(
              readFileSync(join(target, `rank-${rank}`, 'current', f)),
              readFileSync(join(work, `step-${n}`, f)),
            ),
            `rank ${rank} ${f}`,
          ).toBe(0);
    }
  });
});
