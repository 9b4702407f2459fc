/**
 * `hotweights demo`: the whole job on this machine in a few seconds. Makes a small safetensors
 * model (base) and a fine-tune of its top layers, publishes both, plans a full deployment and a
 * delta, and runs each through the fleet flow: an embedded coordinator in this process and one
 * real `hotweights worker` process per rank, which stage, verify, precommit and flip on commit.
 * Then it byte-compares the result with the fine-tune and leaves everything in place to look at.
 * `--no-coordinator` runs the one-host launcher instead (no control plane).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import {
  CoordinatorClient,
  type EmbeddedCoordinator,
  startEmbeddedCoordinator,
  type UpdateView,
} from '@hotweights/coordinator';
import {
  CommitError,
  ConfigError,
  type Manifest,
  type Plan,
  TimeoutError,
  VerificationError,
} from '@hotweights/core';
import { serializeManifest } from '@hotweights/manifest';
import {
  createPlan,
  publish,
  type TensorData,
  writeManifest,
  writePlan,
  writeSafetensors,
} from '@hotweights/planner';
import { recordSourceRoot } from '@hotweights/runtime';
import type { CommandModule } from '../command.js';
import type { CliContext } from '../context.js';
import { onStop } from '../signals.js';
import { type ReplicateSummary, rankTarget, replicateLocally } from './replicate.js';

const MARKER = '.hotweights-demo';
const LAYERS = 8;
const TUNED = [6, 7];

function f32(rows: number, cols: number): TensorData {
  return { dtype: 'F32', shape: [rows, cols], data: randomBytes(rows * cols * 4) };
}

/** Two shards: embeddings + the first half of the layers, the rest + the head. */
function baseModel(): Record<string, Record<string, TensorData>> {
  const shards: Record<string, Record<string, TensorData>> = {
    'model-00001-of-00002.safetensors': { 'embed_tokens.weight': f32(1024, 512) },
    'model-00002-of-00002.safetensors': { 'lm_head.weight': f32(1024, 512) },
  };
  for (let l = 0; l < LAYERS; l++) {
    const shard = l < LAYERS / 2 ? 'model-00001-of-00002.safetensors' : 'model-00002-of-00002.safetensors';
    const s = shards[shard] as Record<string, TensorData>;
    s[`layers.${l}.attn.weight`] = f32(512, 512);
    s[`layers.${l}.mlp.weight`] = f32(512, 1024);
    s[`layers.${l}.norm.weight`] = f32(1, 512);
  }
  return shards;
}

async function writeModel(dir: string, shards: Record<string, Record<string, TensorData>>): Promise<void> {
  await mkdir(dir, { recursive: true });
  for (const [name, tensors] of Object.entries(shards)) await writeSafetensors(join(dir, name), tensors);
  await writeFile(
    join(dir, 'config.json'),
    `${JSON.stringify({ model_type: 'demo', num_layers: LAYERS }, null, 2)}\n`,
  );
}

function fmt(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
}

function line(label: string, s: ReplicateSummary): string {
  const share = s.checkpoint_bytes
    ? ` of ${fmt(s.checkpoint_bytes)} (${((100 * s.bytes_planned) / s.checkpoint_bytes).toFixed(1)}%)`
    : '';
  return `  ${label}: ${fmt(s.bytes_planned)}${share} to ${s.world_size} ranks in ${s.seconds.toFixed(3)} s (${s.throughput_gbps.toFixed(2)} GB/s), ${s.items_verified} items verified on rank 0, committed, pause ${s.pause_ms.toFixed(2)} ms`;
}

/** What one update through the coordinator cost, in the demo's summary shape. */
export interface FleetUpdateSummary {
  readonly version: string;
  readonly world_size: number;
  readonly buckets: number;
  readonly bytes_planned: number;
  readonly checkpoint_bytes: number;
  /** From begin to commit, as the coordinator recorded them. */
  readonly seconds: number;
  readonly throughput_gbps: number;
  readonly committed: boolean;
  /** From the coordinator's commit until every rank reported the new version live. */
  readonly commit_to_live_ms: number;
  readonly live: string | null;
}

interface WorkerProc {
  readonly rank: number;
  readonly child: ChildProcess;
  readonly log: string;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(path: string, lines = 8): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n    ');
  } catch {
    return '(no output)';
  }
}

function exited(w: WorkerProc): boolean {
  return w.child.exitCode !== null || w.child.signalCode !== null;
}

/** A worker that died before the demo was done with it is an error naming its rank and its log. */
function checkAlive(workers: readonly WorkerProc[]): void {
  for (const w of workers) {
    if (exited(w)) {
      throw new CommitError(
        `demo: the worker for rank ${w.rank} exited (${w.child.exitCode ?? w.child.signalCode}); its log ${w.log} ends:\n    ${tail(w.log)}`,
      );
    }
  }
}

/**
 * The same CLI this demo runs from, as a `hotweights worker` process: the built bin, or the
 * TypeScript sources under tsx (execArgv carries the loader and the source condition).
 */
function spawnWorker(
  rank: number,
  worldSize: number,
  coord: EmbeddedCoordinator,
  target: string,
  log: string,
): WorkerProc {
  const fd = openSync(log, 'w');
  const cli = process.argv[1] as string;
  const args = [
    ...process.execArgv,
    cli,
    'worker',
    '--endpoint',
    coord.endpoint,
    '--pub-endpoint',
    coord.pubEndpoint,
    '--rank',
    String(rank),
    '--world-size',
    String(worldSize),
    '--target',
    target,
    '--transport',
    'local',
    '--metrics-port',
    'off',
    '--exit-after',
    '2',
  ];
  try {
    const child = spawn(process.execPath, args, { stdio: ['ignore', fd, fd] });
    child.on('error', () => {}); // reported through its exit code
    return { rank, child, log };
  } finally {
    closeSync(fd);
  }
}

async function waitForWorkers(
  client: CoordinatorClient,
  workers: readonly WorkerProc[],
  deadlineMs: number,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    checkAlive(workers);
    const ranks = new Set((await client.status()).workers.map((w) => w.rank));
    const missing = workers.filter((w) => !ranks.has(w.rank)).map((w) => w.rank);
    if (missing.length === 0) return;
    if (Date.now() > deadline) {
      const w = workers.find((x) => x.rank === missing[0]) as WorkerProc;
      throw new TimeoutError(
        `demo: rank(s) ${missing.join(', ')} did not register with the coordinator within ${deadlineMs / 1000} s; ${w.log} ends:\n    ${tail(w.log)}`,
      );
    }
    await sleep(100);
  }
}

/** Submits, begins (auto-commit on quorum) and waits for the end of one update. */
async function runUpdate(
  client: CoordinatorClient,
  workers: readonly WorkerProc[],
  plan: Plan,
  next: Manifest,
  deadlineMs: number,
): Promise<FleetUpdateSummary> {
  // The coordinator takes manifests in their JSON form, whatever format publish wrote to disk.
  await client.submitPlan(plan, JSON.parse(serializeManifest(next)));
  let u: UpdateView = await client.begin(plan.version, { autoCommit: true });
  const deadline = Date.now() + deadlineMs;
  while (u.state !== 'committed' && u.state !== 'aborted') {
    if (Date.now() > deadline) {
      await client.abort({ version: plan.version, reason: 'demo deadline' }).catch(() => {});
      throw new TimeoutError(
        `demo: update ${plan.version} still ${u.state} after ${deadlineMs / 1000} s (waiting for rank(s) ${u.missing_ranks.join(', ') || '-'})`,
      );
    }
    // A dead worker would only be noticed when its lease expires: say so at once.
    checkAlive(workers);
    await sleep(20);
    u = (await client.status()).updates.find((x) => x.version === plan.version) ?? u;
  }
  if (u.state === 'aborted') {
    throw new CommitError(
      `demo: update ${plan.version} was aborted: ${u.reason ?? 'no reason given'}; live weights are unchanged`,
    );
  }
  // Every worker heartbeats its live version right after its adapter flipped.
  let live: string | null = null;
  for (;;) {
    const s = await client.status();
    const ranks = s.workers.filter((w) => w.live_version === plan.version).map((w) => w.rank);
    if (workers.every((w) => ranks.includes(w.rank))) {
      live = plan.version;
      break;
    }
    if (Date.now() > deadline) {
      throw new TimeoutError(
        `demo: ${plan.version} committed but not live on every rank within the deadline`,
      );
    }
    checkAlive(workers.filter((w) => !ranks.includes(w.rank)));
    await sleep(5);
  }
  const liveAt = Date.now();
  const seconds = ((u.finished_at ?? liveAt) - (u.begun_at ?? liveAt)) / 1000;
  return {
    version: plan.version,
    world_size: plan.world_size ?? workers.length,
    buckets: plan.buckets.length,
    bytes_planned: plan.total_bytes,
    checkpoint_bytes: next.total_bytes,
    seconds,
    throughput_gbps: seconds > 0 ? plan.total_bytes / seconds / 1e9 : 0,
    committed: true,
    commit_to_live_ms: Math.max(0, liveAt - (u.finished_at ?? liveAt)),
    live,
  };
}

async function stopWorker(w: WorkerProc, graceMs: number): Promise<void> {
  if (exited(w)) return;
  const gone = new Promise<void>((r) => w.child.once('exit', () => r()));
  const timer = setTimeout(() => w.child.kill('SIGKILL'), graceMs);
  await gone;
  clearTimeout(timer);
}

/** Both updates through an embedded coordinator and one worker process per rank. */
async function runFleet(
  c: CliContext,
  args: {
    readonly dir: string;
    readonly target: string;
    readonly worldSize: number;
    readonly updates: readonly { plan: Plan; next: Manifest }[];
  },
): Promise<{ summaries: FleetUpdateSummary[]; endpoint: string; logs: string }> {
  const logs = join(args.dir, 'logs');
  await mkdir(logs, { recursive: true });
  const coordLog: string[] = [];
  const coord = await startEmbeddedCoordinator({
    config: {
      leaseS: c.config.leaseS,
      heartbeatS: c.config.heartbeatS,
      handleTtlS: c.config.handleTtlS,
      coordToken: c.config.coordToken,
    },
    log: (l) => coordLog.push(l),
  });
  const client = new CoordinatorClient(coord.endpoint, { token: c.config.coordToken });
  const workers: WorkerProc[] = [];
  let ok = false;
  // Stopping the demo stops its workers (each discards its staging).
  const unregister = onStop(() => {
    for (const w of workers) if (!exited(w)) w.child.kill('SIGTERM');
  });
  try {
    for (let r = 0; r < args.worldSize; r++) {
      const target = rankTarget(args.target, r, args.worldSize);
      workers.push(spawnWorker(r, args.worldSize, coord, target, join(logs, `worker-${r}.log`)));
    }
    await waitForWorkers(client, workers, 60_000);
    const summaries: FleetUpdateSummary[] = [];
    for (const u of args.updates) {
      summaries.push(await runUpdate(client, workers, u.plan, u.next, 120_000));
    }
    // --exit-after 2: each worker leaves by itself after the second update.
    await Promise.all(workers.map((w) => stopWorker(w, 15_000)));
    ok = true;
    return { summaries, endpoint: coord.endpoint, logs };
  } finally {
    // On any failure no worker outlives the demo.
    unregister();
    if (!ok) for (const w of workers) if (!exited(w)) w.child.kill('SIGKILL');
    client.close();
    await coord.close();
    await writeFile(join(logs, 'coordinator.log'), coordLog.map((l) => `${l}\n`).join(''));
  }
}

function fleetLine(label: string, s: FleetUpdateSummary): string {
  const share = ` of ${fmt(s.checkpoint_bytes)} (${((100 * s.bytes_planned) / s.checkpoint_bytes).toFixed(1)}%)`;
  return `  ${label}: ${fmt(s.bytes_planned)}${share} to ${s.world_size} worker processes, begin to commit ${s.seconds.toFixed(3)} s (${s.throughput_gbps.toFixed(2)} GB/s), verified and precommitted by every rank, committed; commit to live on all ranks ${s.commit_to_live_ms.toFixed(0)} ms`;
}

export const demoCommand: CommandModule = {
  name: 'demo',
  register(program, ctx) {
    program
      .command('demo')
      .description(
        'Publish, plan, replicate, verify and commit a small model and a fine-tune on this machine',
      )
      .option(
        '--dir <dir>',
        'where to put everything (replaced if it holds an earlier demo)',
        join(tmpdir(), 'hotweights-demo'),
      )
      .option('--world-size <n>', 'local ranks', '2')
      .option('--no-coordinator', 'replicate with the one-host launcher instead of coordinator + workers')
      .option('--json', 'print the summary as JSON')
      .action(async (opts: { dir: string; worldSize: string; coordinator: boolean; json?: boolean }) => {
        const c = ctx();
        const dir = resolve(opts.dir);
        const worldSize = Number(opts.worldSize);
        if (!Number.isInteger(worldSize) || worldSize < 1 || worldSize > 16) {
          throw new ConfigError(`--world-size ${opts.worldSize}: expected an integer in 1..16`);
        }
        if (existsSync(dir)) {
          const entries = await readdir(dir);
          if (entries.length > 0 && !entries.includes(MARKER)) {
            throw new ConfigError(`--dir ${dir} exists and is not an earlier demo; choose another --dir`);
          }
          await rm(dir, { recursive: true, force: true });
        }
        await mkdir(dir, { recursive: true });
        await writeFile(join(dir, MARKER), 'made by `hotweights demo`; safe to delete\n');
        const say = (text: string) => {
          if (!opts.json) c.out(text);
        };

        const base = join(dir, 'checkpoints', 'base');
        const tuned = join(dir, 'checkpoints', 'finetune');
        const shards = baseModel();
        await writeModel(base, shards);
        // The fine-tune changes the top layers only (what a LoRA merge or an RL step often does).
        const ft = structuredClone(shards);
        for (const l of TUNED) {
          const s = ft['model-00002-of-00002.safetensors'] as Record<string, TensorData>;
          s[`layers.${l}.attn.weight`] = f32(512, 512);
          s[`layers.${l}.mlp.weight`] = f32(512, 1024);
        }
        await writeModel(tuned, ft);

        const m0 = await publish({ checkpoint: base, version: 'v0', modelId: 'hotweights/demo' });
        const m1 = await publish({ checkpoint: tuned, version: 'v1', modelId: 'hotweights/demo' });
        // As `hotweights publish` does: the ranks may read only checkpoints published on this host.
        for (const root of [base, tuned]) await recordSourceRoot(c.config.stateDir, root);
        const allowed = [...(c.config.sourceRoots ?? []), base, tuned];
        const cs: CliContext = { ...c, config: { ...c.config, sourceRoots: allowed } };
        const manifests = join(dir, 'manifests');
        await mkdir(manifests, { recursive: true });
        await writeManifest(m0, join(manifests, 'v0.manifest'));
        await writeManifest(m1, join(manifests, 'v1.manifest'));
        say(`published v0 (${base}) and v1 (${tuned}): ${m1.size} entries, ${fmt(m1.total_bytes)} each`);

        const plans = join(dir, 'plans');
        await mkdir(plans, { recursive: true });
        const bucketBytes = 4 << 20;
        const full = createPlan({
          prev: null,
          next: m0,
          checkpointRoot: base,
          nextManifestPath: join(manifests, 'v0.manifest'),
          bucketBytes,
          worldSize,
        });
        const delta = createPlan({
          prev: m0,
          next: m1,
          checkpointRoot: tuned,
          nextManifestPath: join(manifests, 'v1.manifest'),
          bucketBytes,
          worldSize,
        });
        await writePlan(full, join(plans, 'v0-full.json'));
        await writePlan(delta, join(plans, 'v1-delta.json'));
        say(
          `planned: full deployment of v0 (${full.buckets.length} buckets), delta v0 -> v1 (${delta.buckets.length} buckets, ${fmt(delta.total_bytes)})`,
        );

        const target = join(dir, 'target');
        let result: {
          full: ReplicateSummary | FleetUpdateSummary;
          delta: ReplicateSummary | FleetUpdateSummary;
        };
        let via: string;
        if (opts.coordinator) {
          say(`starting an embedded coordinator and ${worldSize} \`hotweights worker\` process(es)`);
          const fleet = await runFleet(cs, {
            dir,
            target,
            worldSize,
            updates: [
              { plan: full, next: m0 },
              { plan: delta, next: m1 },
            ],
          });
          const [first, second] = fleet.summaries as [FleetUpdateSummary, FleetUpdateSummary];
          say(fleetLine('deploy v0 (full) ', first));
          say(fleetLine('update v1 (delta)', second));
          result = { full: first, delta: second };
          via = `coordinator ${fleet.endpoint} (closed) and ${worldSize} worker process(es); logs in ${fleet.logs}`;
        } else {
          const common = { verify: true, commit: true, target, worldSize, metricsPort: false as const };
          const first = await replicateLocally(cs, { ...common, plan: join(plans, 'v0-full.json') });
          say(line('deploy v0 (full) ', first));
          const second = await replicateLocally(cs, { ...common, plan: join(plans, 'v1-delta.json') });
          say(line('update v1 (delta)', second));
          result = { full: first, delta: second };
          via = 'the one-host launcher (no coordinator)';
        }

        // Independent check: every rank's live files are byte-identical to the fine-tune.
        const files = m1.files.map((f) => f.path);
        for (let r = 0; r < worldSize; r++) {
          const live = join(rankTarget(target, r, worldSize), 'current');
          for (const f of files) {
            if (Buffer.compare(readFileSync(join(live, f)), readFileSync(join(tuned, f))) !== 0) {
              throw new VerificationError(`demo: rank ${r}: ${join(live, f)} differs from ${join(tuned, f)}`);
            }
          }
        }
        const where = rankTarget(target, 0, worldSize);
        if (opts.json) {
          c.json({
            dir,
            target,
            world_size: worldSize,
            coordinator: opts.coordinator,
            full: result.full,
            delta: result.delta,
            verified_files: files.length * worldSize,
          });
          return;
        }
        say(
          `  verified: ${files.length} files on each of ${worldSize} ranks are byte-identical to the fine-tune`,
        );
        say('');
        say(`everything is in ${dir}:`);
        say(`  ${join(where, 'current')} -> versions/v1   (the live model; previous -> versions/v0)`);
        say(`  ${plans}/          the plans (JSON); ${manifests}/ the manifests`);
        say(`  replicated through ${via}`);
        say('try:');
        say(`  hotweights status --target ${target}`);
        say(`  hotweights rollback --target ${target}`);
      });
  },
};
