/**
 * A small fleet for control-plane tests: two checkpoint versions on disk, their manifests and
 * plans (full v0, delta v0 -> v1), and real `hotweights worker` processes with their own target
 * directories, staging dir and output.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan } from '@hotweights/planner';
import { CLI_SOURCE, REPO_ROOT, SOURCE_NODE_ARGS } from './run-cli.js';

export interface Fleet {
  readonly dir: string;
  readonly stagingDir: string;
  readonly ckptA: string;
  readonly ckptB: string;
  /** Full plan to v0 and delta plan v0 -> v1, made for `worldSize` ranks. */
  readonly planV0: string;
  readonly planV1: string;
  target(rank: number): string;
  /** The bytes of `file` in the version live in rank's target (DIR/current). */
  live(rank: number, file: string): Promise<Buffer | null>;
  cleanup(): Promise<void>;
}

export async function makeFleet(worldSize: number): Promise<Fleet> {
  const dir = await mkdtemp(join(tmpdir(), 'hw-fleet-'));
  const stagingDir = `/dev/shm/hw-fleet-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(stagingDir, { recursive: true });
  const ckptA = join(dir, 'ckpt_a');
  const ckptB = join(dir, 'ckpt_b');
  await mkdir(ckptA);
  await mkdir(ckptB);
  const shared = randomBytes(96 * 1024);
  await writeFile(join(ckptA, 'a.bin'), shared);
  await writeFile(join(ckptB, 'a.bin'), shared);
  await writeFile(join(ckptA, 'b.bin'), randomBytes(40 * 1024));
  await writeFile(join(ckptB, 'b.bin'), randomBytes(40 * 1024));
  await writeFile(join(ckptB, 'c.bin'), randomBytes(10 * 1024));
  const m0 = await publish({ checkpoint: ckptA, version: 'v0', hash: 'xxh3-64' });
  const m1 = await publish({ checkpoint: ckptB, version: 'v1', hash: 'xxh3-64' });
  const m0Path = join(dir, 'm_v0.json');
  const m1Path = join(dir, 'm_v1.json');
  await writeManifest(m0, m0Path);
  await writeManifest(m1, m1Path);
  const planV0 = join(dir, 'plan_v0.json');
  const planV1 = join(dir, 'plan_v1.json');
  const common = { bucketBytes: 32 * 1024, worldSize };
  await writePlan(
    createPlan({ prev: null, next: m0, checkpointRoot: ckptA, nextManifestPath: m0Path, ...common }),
    planV0,
  );
  await writePlan(
    createPlan({ prev: m0, next: m1, checkpointRoot: ckptB, nextManifestPath: m1Path, ...common }),
    planV1,
  );
  const target = (rank: number) => join(dir, `target_${rank}`);
  return {
    dir,
    stagingDir,
    ckptA,
    ckptB,
    planV0,
    planV1,
    target,
    live: async (rank, file) => {
      try {
        return await readFile(join(target(rank), 'current', file));
      } catch {
        return null;
      }
    },
    cleanup: async () => {
      await rm(dir, { recursive: true, force: true });
      await rm(stagingDir, { recursive: true, force: true });
    },
  };
}

export interface WorkerProcess {
  readonly rank: number;
  readonly child: ChildProcess;
  output(): string;
  waitFor(text: string | RegExp, ms?: number): Promise<void>;
  kill(signal?: NodeJS.Signals): Promise<void>;
}

export function startWorker(args: {
  rank: number;
  worldSize: number;
  endpoint: string;
  pubEndpoint: string;
  fleet: Fleet;
  env?: NodeJS.ProcessEnv;
  /** `--transport` (default `local`); null: none, the worker chooses for the fleet. */
  transport?: string | null;
  /** More worker flags (e.g. `--device cuda`). */
  args?: readonly string[];
}): WorkerProcess {
  const transport = args.transport === undefined ? 'local' : args.transport;
  const child = spawn(
    process.execPath,
    [
      ...SOURCE_NODE_ARGS,
      CLI_SOURCE,
      'worker',
      '--endpoint',
      args.endpoint,
      '--pub-endpoint',
      args.pubEndpoint,
      '--target',
      args.fleet.target(args.rank),
      '--metrics-port',
      '0',
      ...(transport === null ? [] : ['--transport', transport]),
      ...(args.args ?? []),
    ],
    {
      cwd: REPO_ROOT,
      env: {
        ...process.env,
        RANK: String(args.rank),
        WORLD_SIZE: String(args.worldSize),
        HOTWEIGHTS_STAGING_DIR: args.fleet.stagingDir,
        HOTWEIGHTS_TRANSFER_TIMEOUT_S: '60',
        // The fleet's checkpoints were published in-process (nothing recorded for this host).
        HOTWEIGHTS_SOURCE_ROOTS: dirname(args.fleet.planV0),
        ...args.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  return {
    rank: args.rank,
    child,
    output: () => out,
    waitFor: async (text, ms = 60_000) => {
      const deadline = Date.now() + ms;
      const seen = () => (typeof text === 'string' ? out.includes(text) : text.test(out));
      while (!seen()) {
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`worker ${args.rank} never printed ${String(text)}; output:\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    kill: (signal = 'SIGTERM') =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null || child.signalCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill(signal);
      }),
  };
}
