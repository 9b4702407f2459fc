/**
 * Through the control plane: `coord-serve`, then `mpirun -n 3 hotweights worker` (the worker
 * agent on each rank, forced onto the mpi transport), and the CLI's `begin --wait` deploying a
 * full version and a delta to every rank.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan } from '@hotweights/planner';
import { afterAll, describe, expect, it } from 'vitest';
import { startCoordProcess } from '../../cli/test/coord-process.js';
import { runCli } from '../../cli/test/run-cli.js';
import { MPI_ENV, REPO_ROOT, SOURCE_NODE_ARGS } from './mpirun.js';

const CLI = join(REPO_ROOT, 'packages/cli/src/bin.ts');
const work = mkdtempSync(join(tmpdir(), 'hw-mpi-worker-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-mpi-worker-'));
const cleanups: (() => unknown)[] = [];
afterAll(async () => {
  while (cleanups.length) await cleanups.pop()?.();
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

async function version(
  name: string,
  files: Record<string, Buffer>,
  prev: Awaited<ReturnType<typeof publish>> | null,
) {
  const dir = join(work, name);
  mkdirSync(dir);
  for (const [f, data] of Object.entries(files)) writeFileSync(join(dir, f), data);
  const manifest = await publish({ checkpoint: dir, version: name, hash: 'xxh3-64' });
  const manifestPath = join(work, `${name}.manifest.json`);
  await writeManifest(manifest, manifestPath);
  const planPath = join(work, `${name}.plan.json`);
  await writePlan(
    createPlan({
      prev,
      next: manifest,
      checkpointRoot: dir,
      nextManifestPath: manifestPath,
      bucketBytes: 256 << 10,
      worldSize: 3,
    }),
    planPath,
  );
  return { dir, manifest, planPath };
}

describe('mpirun -n 3 hotweights worker over the mpi transport', { timeout: 240_000 }, () => {
  it('deploys v0 then a delta v1 to every rank through the coordinator', async () => {
    const shared = randomBytes(1 << 20);
    const v0 = await version('v0', { 'a.bin': shared, 'b.bin': randomBytes(3 << 20) }, null);
    const v1 = await version(
      'v1',
      { 'a.bin': shared, 'b.bin': randomBytes(3 << 20), 'c.bin': randomBytes(5000) },
      v0.manifest,
    );
    const env = {
      HOTWEIGHTS_STAGING_DIR: staging,
      HOTWEIGHTS_STATE_DIR: join(work, 'state'),
      HOTWEIGHTS_SOURCE_ROOTS: work, // published in-process: nothing recorded
      HOTWEIGHTS_LEASE_S: '5',
      HOTWEIGHTS_HEARTBEAT_S: '0.5',
    };
    const coord = await startCoordProcess(env);
    cleanups.push(() => coord.stop('SIGKILL'));
    const workerCmd = [
      SOURCE_NODE_ARGS.join(' '),
      CLI,
      'worker',
      '--metrics-port',
      'off',
      '--exit-after',
      '2',
    ].join(' ');
    const job = spawn(
      'mpirun',
      [
        '-n',
        '3',
        '--oversubscribe',
        'sh',
        '-c',
        `exec node ${workerCmd} --target "${work}/target-$OMPI_COMM_WORLD_RANK"`,
      ],
      {
        cwd: REPO_ROOT,
        env: {
          ...process.env,
          ...MPI_ENV,
          ...env,
          HOTWEIGHTS_COORD: coord.endpoint,
          HOTWEIGHTS_TRANSPORT: 'mpi',
        },
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      },
    );
    cleanups.push(() => {
      if (job.exitCode === null) process.kill(-(job.pid as number), 'SIGKILL');
    });
    let out = '';
    job.stdout.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    job.stderr.setEncoding('utf8').on('data', (d: string) => {
      out += d;
    });
    const exited = new Promise<number | null>((res) => job.on('close', (c) => res(c)));
    const deadline = Date.now() + 60_000;
    while ((out.match(/registered as/g) ?? []).length < 3) {
      if (job.exitCode !== null || Date.now() > deadline)
        throw new Error(`workers did not register:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const cli = (args: string[]) =>
      runCli(args, { env: { ...env, HOTWEIGHTS_COORD: coord.endpoint }, timeoutMs: 120_000 });
    for (const v of [v0, v1]) {
      const name = v === v0 ? 'v0' : 'v1';
      expect((await cli(['coord-submit-plan', '--plan', v.planPath])).code).toBe(0);
      const begun = await cli(['begin', '--version', name, '--wait']);
      expect(begun.stdout, begun.stderr + out).toContain(`update ${name}: committed`);
    }
    expect(await exited, out).toBe(0);
    for (const r of [0, 1, 2]) {
      for (const f of ['a.bin', 'b.bin', 'c.bin'])
        expect(
          Buffer.compare(
            readFileSync(join(work, `target-${r}`, 'current', f)),
            readFileSync(join(v1.dir, f)),
          ),
          `rank ${r} ${f}`,
        ).toBe(0);
    }
    expect((out.match(/update v1: committed, live v1/g) ?? []).length).toBe(3);
  });
});
