/**
 * The worker agent against an in-process coordinator (real ZeroMQ sockets on loopback), with real
 * checkpoint files, shared-memory staging and the directory adapter. A world of one lands every
 * item straight in the target (no staging segment is ever made); a world of two stages, streams
 * each verified bucket to the adapter, and commits on both ranks. Either way the live files are
 * byte-identical to the checkpoint, and a plan for another world is refused before anything moves.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, type FSWatcher, readdirSync, readFileSync, watch } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectoryAdapter } from '@hotweights/adapter-directory';
import { type AdapterUpdate, loadConfig, type Manifest, type Plan } from '@hotweights/core';
import { serializeManifest } from '@hotweights/manifest';
import { createPlan, publish } from '@hotweights/planner';
import { HostStaging } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterEach, describe, expect, it } from 'vitest';
import { CoordinatorClient } from '../src/client.js';
import { type EmbeddedCoordinator, startEmbeddedCoordinator } from '../src/embedded.js';
import type { CoordinatorServer } from '../src/server.js';
import { WorkerAgent } from '../src/worker.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

/** The directory adapter, counting calls of the non-streaming prepare (which staging feeds). */
class CountingDirectoryAdapter extends DirectoryAdapter {
  fullPrepares = 0;
  override async prepare(update: AdapterUpdate): Promise<void> {
    this.fullPrepares++;
    return super.prepare(update);
  }
}

interface Setup {
  readonly dir: string;
  readonly ckpt: string;
  readonly stagingDir: string;
  readonly coord: EmbeddedCoordinator;
  readonly client: CoordinatorClient;
  readonly manifest: Manifest;
  plan(worldSize: number): Plan;
}

async function setup(): Promise<Setup> {
  const dir = await mkdtemp(join(tmpdir(), 'hw-agent-'));
  const stagingDir = join('/dev/shm', `hw-agent-${process.pid}-${randomBytes(4).toString('hex')}`);
  await mkdir(stagingDir);
  cleanups.push(() => rm(dir, { recursive: true, force: true }));
  cleanups.push(() => rm(stagingDir, { recursive: true, force: true }));
  const ckpt = join(dir, 'ckpt');
  await mkdir(ckpt);
  // Files of a few buckets each, one of them smaller than a page.
  await writeFile(join(ckpt, 'a.bin'), randomBytes(150 * 1024));
  await writeFile(join(ckpt, 'b.bin'), randomBytes(70 * 1024 + 3));
  await writeFile(join(ckpt, 'c.txt'), 'config\n');
  const manifest = await publish({ checkpoint: ckpt, version: 'v0' });
  const coord = await startEmbeddedCoordinator({ config: { leaseS: 5, heartbeatS: 0.25 } });
  cleanups.push(() => coord.close());
  const client = new CoordinatorClient(coord.endpoint);
  cleanups.push(async () => client.close());
  const plan = (worldSize: number) =>
    createPlan({
      prev: null,
      next: manifest,
      checkpointRoot: ckpt,
      nextManifestPath: null,
      bucketBytes: 64 * 1024,
      worldSize,
    });
  return { dir, ckpt, stagingDir, coord, client, manifest, plan };
}

async function startAgent(
  s: Setup,
  rank: number,
  worldSize: number,
  lines: string[],
  env: Record<string, string> = {},
) {
  const config = loadConfig({ HOTWEIGHTS_STAGING_DIR: s.stagingDir, HOTWEIGHTS_HEARTBEAT_S: '0.25', ...env });
  const staging = await HostStaging.open({ dir: s.stagingDir, rank, spareBytes: 0 });
  const adapter = new CountingDirectoryAdapter({ target: join(s.dir, `target-${rank}`), rank });
  const agent = await WorkerAgent.start({
    endpoint: s.coord.endpoint,
    pubEndpoint: s.coord.pubEndpoint,
    rank,
    worldSize,
    config,
    adapter,
    staging,
    log: (l) => lines.push(l),
    openTransport: ({ rendezvous }) => localTransportProvider.create({ rank, worldSize, config, rendezvous }),
  });
  cleanups.push(async () => {
    await agent.stop();
    await staging.close();
  });
  return { agent, adapter };
}

/** Submits and begins `plan` (commit on quorum) and waits until it is committed or aborted. */
async function runUpdate(s: Setup, plan: Plan): Promise<{ state: string; reason: string | null }> {
  await s.client.submitPlan(plan, JSON.parse(serializeManifest(s.manifest)));
  await s.client.begin(plan.version, { autoCommit: true });
  for (;;) {
    const u = (await s.client.status()).updates.find((x) => x.version === plan.version);
    if (u && (u.state === 'committed' || u.state === 'aborted')) return { state: u.state, reason: u.reason };
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function waitLive(agents: readonly WorkerAgent[], version: string): Promise<void> {
  while (!agents.every((a) => a.liveVersion === version)) await new Promise((r) => setTimeout(r, 10));
}

function expectLiveEqualsCheckpoint(s: Setup, target: string): void {
  for (const f of ['a.bin', 'b.bin', 'c.txt']) {
    const live = readFileSync(join(target, 'current', f));
    expect(Buffer.compare(live, readFileSync(join(s.ckpt, f))), `${target} ${f}`).toBe(0);
  }
}

/** Names created in `dir` while the returned watcher runs. */
function recordCreated(dir: string): { names: string[]; watcher: FSWatcher } {
  const names: string[] = [];
  const watcher = watch(dir, (_event, name) => {
    if (name && !names.includes(name)) names.push(name);
  });
  return { names, watcher };
}

describe('WorkerAgent with the update pipeline', { timeout: 60_000 }, () => {
  it('a world of one lands every item directly in the target: no staging segment, committed, byte-identical', async () => {
    const s = await setup();
    const lines: string[] = [];
    const { agent, adapter } = await startAgent(s, 0, 1, lines);
    const created = recordCreated(s.stagingDir);
    cleanups.push(async () => created.watcher.close());
    const plan = s.plan(1);
    expect(plan.buckets.length).toBeGreaterThan(2);
    expect(await runUpdate(s, plan)).toEqual({ state: 'committed', reason: null });
    await waitLive([agent], 'v0');
    expectLiveEqualsCheckpoint(s, join(s.dir, 'target-0'));
    expect(created.names).toEqual([]);
    expect(adapter.fullPrepares).toBe(0);
    expect(lines).toContainEqual(
      expect.stringMatching(
        new RegExp(
          `^update v0: staged ${plan.buckets.length} bucket\\(s\\) \\([\\d.]+ MiB landed, \\d+ item\\(s\\), direct\\), verified, precommitted$`,
        ),
      ),
    );
    expect(lines).toContain('update v0: committed, live v0');
  });

  it('a world of two stages, streams each verified bucket to the adapter, and commits on both ranks', async () => {
    const s = await setup();
    const lines: string[][] = [[], []];
    const ranks = await Promise.all([0, 1].map((r) => startAgent(s, r, 2, lines[r] as string[])));
    const created = recordCreated(s.stagingDir);
    cleanups.push(async () => created.watcher.close());
    const plan = s.plan(2);
    expect(await runUpdate(s, plan)).toEqual({ state: 'committed', reason: null });
    await waitLive(
      ranks.map((r) => r.agent),
      'v0',
    );
    for (const r of [0, 1]) {
      expectLiveEqualsCheckpoint(s, join(s.dir, `target-${r}`));
      expect(ranks[r]?.adapter.fullPrepares).toBe(0);
      const n = plan.buckets.filter((b) => b.consumer_ranks.includes(r)).length;
      expect(lines[r]).toContainEqual(
        expect.stringMatching(
          new RegExp(
            `^update v0: staged ${n} bucket\\(s\\) \\(.* MiB landed, .*streaming\\), verified, precommitted$`,
          ),
        ),
      );
      expect(lines[r]).toContainEqual(
        expect.stringMatching(/^update v0: rank \d over local: \d+ bucket\(s\), /),
      );
    }
    // Rank 1's buckets came through staging segments (the watcher sees them), released on commit.
    expect(created.names.filter((n) => n.endsWith('.seg')).length).toBeGreaterThan(0);
    expect(readdirSync(s.stagingDir).filter((n) => n.endsWith('.seg'))).toEqual([]);
  });

  it('refuses a plan made for another world before anything moves, saying what to re-plan', async () => {
    const s = await setup();
    const lines: string[] = [];
    const { agent } = await startAgent(s, 0, 1, lines);
    const created = recordCreated(s.stagingDir);
    cleanups.push(async () => created.watcher.close());
    const result = await runUpdate(s, s.plan(2));
    expect(result.state).toBe('aborted');
    expect(result.reason).toMatch(
      /plan v0 \(from the coordinator\) was made for world size 2, but this job has 1 rank\(s\): re-plan with `hotweights plan … --world-size 1`/,
    );
    expect(agent.liveVersion).toBeNull();
    expect(existsSync(join(s.dir, 'target-0', 'current'))).toBe(false);
    expect(created.names).toEqual([]);
  });
});

type ServiceCall = CoordinatorServer['service']['call'];

/**
 * Puts `intercept` in front of the coordinator's service (the server, its queue and the agents
 * stay real): it sees each call with the real `call` to pass it on, or not.
 */
function interceptCalls(
  s: Setup,
  intercept: (
    method: Parameters<ServiceCall>[0],
    params: Parameters<ServiceCall>[1],
    pass: () => Promise<unknown>,
  ) => Promise<unknown>,
): void {
  const service = s.coord.server.service;
  const call = service.call.bind(service);
  service.call = (method, params, token) => intercept(method, params, () => call(method, params, token));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('WorkerAgent votes', { timeout: 60_000 }, () => {
  it('are not sent again on a status answered after the vote went out but read before it arrived', async () => {
    const s = await setup();
    const lines: string[][] = [[], []];
    const ranks = await Promise.all([0, 1].map((r) => startAgent(s, r, 2, lines[r] as string[])));
    // Every status reply is held 400 ms after the coordinator read its state: a rank that asked
    // just before it voted gets an answer, after voting, that does not list its vote.
    const votes = new Map<number, number>();
    interceptCalls(s, async (method, params, pass) => {
      if (method === 'precommit') votes.set(Number(params.rank), (votes.get(Number(params.rank)) ?? 0) + 1);
      const result = await pass();
      if (method === 'status') await sleep(400);
      return result;
    });
    expect(await runUpdate(s, s.plan(2))).toEqual({ state: 'committed', reason: null });
    await waitLive(
      ranks.map((r) => r.agent),
      'v0',
    );
    for (const r of [0, 1]) {
      expect(lines[r]).toContainEqual(expect.stringMatching(/^update v0: .*, precommitted$/));
      expect(lines[r]?.filter((l) => l.includes('precommit sent again'))).toEqual([]);
    }
    expect(Object.fromEntries(votes)).toEqual({ 0: 1, 1: 1 });
  });

  it('are sent again when the first precommit was lost on its way: the rank stays in doubt, then the update commits', async () => {
    const s = await setup();
    const lines: string[] = [];
    // The worker's calls time out after max(2 s, its lease).
    const { agent } = await startAgent(s, 0, 1, lines, { HOTWEIGHTS_LEASE_S: '1' });
    let votes = 0;
    interceptCalls(s, async (method, _params, pass) => {
      // The first vote never reaches the coordinator and gets no answer.
      if (method === 'precommit' && ++votes === 1) return new Promise(() => {});
      return pass();
    });
    expect(await runUpdate(s, s.plan(1))).toEqual({ state: 'committed', reason: null });
    await waitLive([agent], 'v0');
    expect(lines).toContain('update v0: precommit sent again; the coordinator has it now');
    expect(votes).toBe(2);
    expectLiveEqualsCheckpoint(s, join(s.dir, 'target-0'));
  });
});
