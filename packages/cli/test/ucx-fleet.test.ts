/**
 * A fleet of separately started `hotweights worker` processes, each with its own node id, that
 * meets through the coordinator: every update's rendezvous gathers the node ids (all workers
 * choose one transport from them) and the UCX worker addresses (no MASTER_ADDR anywhere). Real
 * coordinator, real workers, real UCX over loopback TCP. Addresses come from configuration (the
 * route to the coordinator), so the same test runs with workers in network namespaces.
 */
import { randomBytes } from 'node:crypto';
import { copyFile, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { loadManifest } from '@hotweights/manifest';
import { createPlan, publish, writeManifest, writePlan } from '@hotweights/planner';
import { afterEach, describe, expect, it } from 'vitest';
import { type Fleet, makeFleet, startWorker, type WorkerProcess } from './coord-fixture.js';
import { startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

const FAST = { HOTWEIGHTS_LEASE_S: '3', HOTWEIGHTS_HEARTBEAT_S: '0.25' };
// UCX over TCP only: what separate hosts would use (shared memory would hide the network path).
const UCX = { UCX_TLS: 'tcp', HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S: '60' };

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function setup(nodeIds: readonly string[], workerEnv: NodeJS.ProcessEnv = {}) {
  const fleet = await makeFleet(nodeIds.length);
  cleanups.push(() => fleet.cleanup());
  const coord = await startCoordProcess(FAST);
  cleanups.push(() => coord.stop('SIGKILL'));
  const spawn = (rank: number, env: NodeJS.ProcessEnv = {}) => {
    const w = startWorker({
      rank,
      worldSize: nodeIds.length,
      endpoint: coord.endpoint,
      pubEndpoint: coord.pubEndpoint,
      fleet,
      transport: null,
      env: { ...FAST, ...UCX, HOTWEIGHTS_NODE_ID: nodeIds[rank], ...workerEnv, ...env },
    });
    cleanups.push(() => w.kill('SIGKILL'));
    return w;
  };
  const workers = nodeIds.map((_, rank) => spawn(rank));
  for (const w of workers) await w.waitFor('registered as');
  const cli = (args: string[]) =>
    runCli(args, { env: { HOTWEIGHTS_COORD: coord.endpoint, ...FAST }, timeoutMs: 120_000 });
  return { fleet, coord, workers, cli, spawn };
}

/** Every rank's live files equal the checkpoint's (workers flip just after the coordinator commits). */
async function expectLive(fleet: Fleet, ranks: number, ckpt: string, files: string[]) {
  for (let rank = 0; rank < ranks; rank++) {
    for (const f of files) {
      const want = await readFile(join(ckpt, f));
      const deadline = Date.now() + 60_000;
      while (!(await fleet.live(rank, f))?.equals(want) && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      expect((await fleet.live(rank, f))?.equals(want), `rank ${rank} ${f}`).toBe(true);
    }
  }
}

async function deploy(cli: (args: string[]) => ReturnType<typeof runCli>, plan: string, version: string) {
  expect((await cli(['coord-submit-plan', '--plan', plan])).code).toBe(0);
  return cli(['begin', '--version', version, '--wait']);
}

describe('a fleet of separately started workers meeting through the coordinator', {
  timeout: 240_000,
}, () => {
  it('on 3 nodes: full then delta over UCX, byte-identical and committed everywhere', async () => {
    const { fleet, workers, cli } = await setup(['node-a', 'node-b', 'node-c']);
    const logs = () => workers.map((w) => w.output()).join('\n---\n');
    // `hotweights transports` explains what this fleet's workers will choose, and why.
    const listed = await cli(['transports']);
    expect(listed.stdout).toMatch(
      /^fleet \(the 3 worker\(s\) at tcp:\/\/127\.0\.0\.1:\d+\): ucx: ranks on 3 nodes \(node-a, node-b, node-c\) need a transport that spans hosts \(mpi: .*run under mpirun\)$/m,
    );
    const v0 = await deploy(cli, fleet.planV0, 'v0');
    expect(v0.stderr, logs()).toBe('');
    expect(v0.stdout, logs()).toContain('update v0: committed, precommitted 3/3');
    await expectLive(fleet, 3, fleet.ckptA, ['a.bin', 'b.bin']);
    const v1 = await deploy(cli, fleet.planV1, 'v1');
    expect(v1.stderr, logs()).toBe('');
    expect(v1.stdout, logs()).toContain('update v1: committed, precommitted 3/3');
    await expectLive(fleet, 3, fleet.ckptB, ['a.bin', 'b.bin', 'c.bin']);
    for (const w of workers) {
      await w.waitFor('update v1: committed, live v1');
      // The choice and its reason, the same on every rank, for both updates.
      const chose = w.output().match(/transport ucx: ranks on 3 nodes \(node-a, node-b, node-c\)/g);
      expect(chose?.length, w.output()).toBe(2);
    }
  });

  it('on one node: the same workers keep the local transport', async () => {
    const { fleet, workers, cli } = await setup(['node-a', 'node-a', 'node-a']);
    expect((await cli(['transports'])).stdout).toMatch(
      /^fleet \(the 3 worker\(s\) at \S+\): local: all 3 rank\(s\) on node node-a, shared memory is the fastest path$/m,
    );
    const v0 = await deploy(cli, fleet.planV0, 'v0');
    expect(v0.stdout).toContain('update v0: committed, precommitted 3/3');
    await expectLive(fleet, 3, fleet.ckptA, ['a.bin', 'b.bin']);
    for (const w of workers) {
      await w.waitFor('update v0: committed, live v0');
      expect(w.output()).toContain('transport local: all 3 rank(s) on node node-a');
    }
  });

  it('a worker killed mid-transfer aborts the update everywhere naming it; live stays v0; the next update commits', async () => {
    // One bucket at a time in small chunks: the update takes long enough to stop a rank inside it.
    const slow = { HOTWEIGHTS_INFLIGHT_BUCKETS: '1', HOTWEIGHTS_UCX_CHUNK_MB: '0.0625' };
    const { fleet, workers, cli, spawn } = await setup(['node-a', 'node-b', 'node-c'], slow);
    const logs = () => workers.map((w) => w.output()).join('\n---\n');
    expect((await deploy(cli, fleet.planV0, 'v0')).stdout, logs()).toContain('update v0: committed');
    const bigPlan = await bigUpdate(fleet);
    const victim = workers[1] as WorkerProcess;
    const landedBefore = await bucketsLanded(victim);
    expect((await cli(['coord-submit-plan', '--plan', bigPlan])).code).toBe(0);
    const begin = cli(['begin', '--version', 'v1', '--wait']);
    // Killed once its first bucket of v1 has landed: the chain through it is moving bytes.
    while ((await bucketsLanded(victim)) <= landedBefore) await new Promise((r) => setTimeout(r, 20));
    await victim.kill('SIGKILL');
    const failed = await begin;
    expect(failed.code, logs()).toBe(1);
    // The reason names the peer that went away: a survivor's transport saw it go ("rank 1 was
    // lost"), or, when the kill came after the last bucket had passed it, its lease ran out.
    expect(failed.stderr, logs()).toMatch(
      /update v1 was aborted: (rank [02] \(node-[ac]\): .*bucket \d+: rank 1 was lost \(its process exited|worker \S+ \(rank 1, node node-b\) lost its lease)/,
    );
    for (const rank of [0, 2]) {
      await (workers[rank] as WorkerProcess).waitFor(/update v1: aborted .*staging discarded, live v0/);
    }
    // Nothing of v1 is live anywhere, the victim's target included.
    await expectLive(fleet, 3, fleet.ckptA, ['a.bin', 'b.bin']);
    const again = spawn(1);
    await again.waitFor('registered as');
    const v1 = await deploy(cli, bigPlan, 'v1');
    expect(v1.stdout, `${logs()}\n---\n${again.output()}`).toContain(
      'update v1: committed, precommitted 3/3',
    );
    await expectLive(fleet, 3, join(fleet.dir, 'ckpt_big'), ['a.bin', 'b.bin', 'big.bin']);
  });

  it('a worker restarted after the broadcasts fetches its share from its peers over UCX, striped', async () => {
    const slow = { HOTWEIGHTS_LEASE_S: '8' };
    const { fleet, workers, cli, spawn } = await setup(['node-a', 'node-b', 'node-c'], slow);
    const logs = () => workers.map((w) => w.output()).join('\n---\n');
    expect((await cli(['coord-submit-plan', '--plan', fleet.planV0])).code).toBe(0);
    expect((await cli(['begin', '--version', 'v0', '--no-auto-commit'])).code).toBe(0);
    for (const w of workers) await w.waitFor('update v0: staged');
    const [w0, w1, w2] = workers as [WorkerProcess, WorkerProcess, WorkerProcess];
    await w2.kill('SIGKILL'); // its staging dies with it, and so does its prepared version:
    await rm(join(fleet.target(2), 'versions'), { recursive: true, force: true });
    await rm(join(fleet.target(2), '.hotweights'), { recursive: true, force: true });
    const again = spawn(2, slow);
    await again.waitFor(
      /update v0: broadcasts are over; fetching \d+ bucket\(s\) over ucx from rank\(s\) 0, 1, striped/,
    );
    await again.waitFor('update v0: fetched and verified');
    await again.waitFor('update v0: staged');
    expect(again.output()).not.toContain('from the source');
    expect((await cli(['commit', '--version', 'v0'])).stdout, logs()).toContain('update v0: committed');
    for (const w of [w0, w1, again]) await w.waitFor('update v0: committed, live v0');
    await expectLive(fleet, 3, fleet.ckptA, ['a.bin', 'b.bin']);
    // What the holders sent over UCX is exactly rank 2's share, from both of them: the source
    // (rank 0) sent only its stripes, and nothing was read from the checkpoint by path.
    const plan = JSON.parse(await readFile(fleet.planV0, 'utf8')) as {
      buckets: { size: number; consumer_ranks: number[] }[];
    };
    const share = plan.buckets.filter((b) => b.consumer_ranks.includes(2)).reduce((n, b) => n + b.size, 0);
    const served = async (w: WorkerProcess) => {
      await w.waitFor(/update v0: stopped serving; \d+ B served/);
      return Number(/update v0: stopped serving; (\d+) B served/.exec(w.output())?.[1]);
    };
    const [fromSource, fromPeer] = [await served(w0), await served(w1)];
    expect(fromSource).toBeGreaterThan(0);
    expect(fromPeer).toBeGreaterThan(0);
    expect(fromSource + fromPeer).toBe(share);
    // The same count as a metric on the source's worker.
    expect(await metric(w0, 'hotweights_worker_served_bytes_total')).toBe(fromSource);
  });
});

/** A delta v0 -> v1 with 32 MiB more in 256 KiB buckets. */
async function bigUpdate(fleet: Fleet): Promise<string> {
  const ckpt = join(fleet.dir, 'ckpt_big');
  await mkdir(ckpt);
  await copyFile(join(fleet.ckptA, 'a.bin'), join(ckpt, 'a.bin'));
  await writeFile(join(ckpt, 'b.bin'), randomBytes(40 * 1024));
  await writeFile(join(ckpt, 'big.bin'), randomBytes(32 * 1024 * 1024));
  const next = await publish({ checkpoint: ckpt, version: 'v1', hash: 'xxh3-64' });
  const manifestPath = join(fleet.dir, 'm_v1_big.json');
  await writeManifest(next, manifestPath);
  const prev = await loadManifest(join(fleet.dir, 'm_v0.json'));
  const plan = join(fleet.dir, 'plan_v1_big.json');
  const common = {
    bucketBytes: 512 * 1024,
    worldSize: 3,
    checkpointRoot: ckpt,
    nextManifestPath: manifestPath,
  };
  await writePlan(createPlan({ prev, next, ...common }), plan);
  return plan;
}

/** A worker's sample of metric `name` (with `label` when given), from its Prometheus endpoint. */
async function metric(w: WorkerProcess, name: string, label = ''): Promise<number> {
  const url = /worker metrics on (\S+)/.exec(w.output())?.[1];
  if (!url) throw new Error(`worker ${w.rank} printed no metrics URL:\n${w.output()}`);
  const text = await (await fetch(url)).text();
  const line = text.split('\n').find((l) => /^\w+/.exec(l)?.[0] === name && l.includes(label));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** Buckets this worker has landed so far. */
function bucketsLanded(w: WorkerProcess): Promise<number> {
  return metric(w, 'hotweights_buckets_total', 'role="land"');
}
