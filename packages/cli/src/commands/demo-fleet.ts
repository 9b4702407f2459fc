/**
 * The demo's fleet: an embedded coordinator in this process and one real `hotweights worker`
 * process per rank, through which each demo variant (directory targets, a vLLM server) runs its
 * updates and reports what each cost.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  CoordinatorClient,
  type EmbeddedCoordinator,
  startEmbeddedCoordinator,
  type UpdateView,
} from '@hotweights/coordinator';
import { CommitError, type Manifest, type Plan, TimeoutError } from '@hotweights/core';
import { serializeManifest } from '@hotweights/manifest';
import type { CliContext } from '../context.js';
import { onStop } from '../signals.js';

export function fmt(n: number): string {
  return n >= 2 ** 20 ? `${(n / 2 ** 20).toFixed(1)} MiB` : `${(n / 1024).toFixed(1)} KiB`;
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
  adapterArgs: readonly string[],
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
    ...adapterArgs,
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
export async function runFleet(
  c: CliContext,
  args: {
    readonly dir: string;
    /** Where rank r's worker lands versions: its adapter flags (`--target DIR`, `--vllm-url URL`). */
    readonly adapterArgs: (rank: number) => readonly string[];
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
      workers.push(spawnWorker(r, args.worldSize, coord, args.adapterArgs(r), join(logs, `worker-${r}.log`)));
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
    unregister();
    // On any failure no worker outlives the demo.
    if (!ok) for (const w of workers) if (!exited(w)) w.child.kill('SIGKILL');
    client.close();
    await coord.close();
    await writeFile(join(logs, 'coordinator.log'), coordLog.map((l) => `${l}\n`).join(''));
  }
}

export function fleetLine(label: string, s: FleetUpdateSummary): string {
  const share = ` of ${fmt(s.checkpoint_bytes)} (${((100 * s.bytes_planned) / s.checkpoint_bytes).toFixed(1)}%)`;
  return `  ${label}: ${fmt(s.bytes_planned)}${share} to ${s.world_size} worker processes, begin to commit ${s.seconds.toFixed(3)} s (${s.throughput_gbps.toFixed(2)} GB/s), verified and precommitted by every rank, committed; commit to live on all ranks ${s.commit_to_live_ms.toFixed(0)} ms`;
}
