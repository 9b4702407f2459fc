/**
 * The control plane end to end with real processes: `coord-serve`, `hotweights worker` per rank
 * (directory adapter, local transport over /dev/shm), and the CLI driving updates.
 */
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Dealer } from 'zeromq';
import { startRedis } from '../../coordinator/test/redis-server.js';
import { type Fleet, makeFleet, startWorker, type WorkerProcess } from './coord-fixture.js';
import { startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

const FAST = { HOTWEIGHTS_LEASE_S: '2', HOTWEIGHTS_HEARTBEAT_S: '0.25' };

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

async function setup(worldSize: number, coordEnv: NodeJS.ProcessEnv = {}) {
  const fleet = await makeFleet(worldSize);
  cleanups.push(() => fleet.cleanup());
  const coord = await startCoordProcess({ ...FAST, ...coordEnv });
  cleanups.push(() => coord.stop('SIGKILL'));
  const workers: WorkerProcess[] = [];
  const spawnWorker = (rank: number) => {
    const w = startWorker({
      rank,
      worldSize,
      endpoint: coord.endpoint,
      pubEndpoint: coord.pubEndpoint,
      fleet,
      env: FAST,
    });
    workers.push(w);
    cleanups.push(() => w.kill('SIGKILL'));
    return w;
  };
  const cli = (args: string[]) =>
    runCli(args, { env: { HOTWEIGHTS_COORD: coord.endpoint, ...FAST }, timeoutMs: 120_000 });
  return { fleet, coord, workers, spawnWorker, cli };
}

async function expectLive(fleet: Fleet, rank: number, ckpt: string, files: string[]) {
  for (const f of files) {
    const want = await readFile(join(ckpt, f));
    const got = await fleet.live(rank, f);
    expect(got?.equals(want), `rank ${rank} ${f}`).toBe(true);
  }
}

describe('coordinator + worker processes', { timeout: 240_000 }, () => {
  it('deploys v0 then v1 to every rank; a late worker catches up and commits with the others', async () => {
    const { fleet, coord, spawnWorker, cli } = await setup(3);
    const w0 = spawnWorker(0);
    const w1 = spawnWorker(1);
    await w0.waitFor('registered as');
    await w1.waitFor('registered as');

    // Garbage first: thousands of random frames at the real server, which must keep serving.
    const raw = new Dealer({ linger: 0 });
    raw.connect(coord.endpoint);
    for (let i = 0; i < 2000; i++)
      await raw.send([Buffer.from(Array.from({ length: i % 97 }, (_, j) => (i * 31 + j * 7) & 0xff))]);
    raw.receiveTimeout = 10_000;
    for (let i = 0; i < 2000; i++) expect(String((await raw.receive())[0])).toContain('"error"');
    raw.close();

    expect((await cli(['coord-submit-plan', '--plan', fleet.planV0])).stdout).toContain('with its manifest');
    const begin = runCli(['begin', '--version', 'v0', '--wait'], {
      env: { HOTWEIGHTS_COORD: coord.endpoint },
      timeoutMs: 120_000,
    });
    // Rank 2 starts only after the update began: it learns about it from status and joins in.
    await w0.waitFor('update v0: begun');
    const w2 = spawnWorker(2);
    const result = await begin;
    // Until rank 2 registers, begin --wait says which rank has no worker (and nothing else).
    for (const line of result.stderr.split('\n').filter(Boolean))
      expect(line).toMatch(/^hotweights: warning: no worker serves rank\(s\) 2 of update v0: /);
    expect(result.stdout).toContain('update v0: committed, precommitted 3/3');
    for (const w of [w0, w1, w2]) await w.waitFor('update v0: committed, live v0');
    for (const r of [0, 1, 2]) await expectLive(fleet, r, fleet.ckptA, ['a.bin', 'b.bin']);

    await cli(['coord-submit-plan', '--plan', fleet.planV1]);
    const v1 = await cli(['begin', '--version', 'v1', '--wait']);
    expect(v1.stdout).toContain('update v1: committed');
    for (const w of [w0, w1, w2]) await w.waitFor('update v1: committed, live v1');
    for (const r of [0, 1, 2]) await expectLive(fleet, r, fleet.ckptB, ['a.bin', 'b.bin', 'c.bin']);
    const status = JSON.parse((await cli(['coord-status', '--json'])).stdout);
    expect(status.current_version).toBe('v1');
    expect(status.workers.map((w: { live_version: string }) => w.live_version)).toEqual(['v1', 'v1', 'v1']);

    // Prometheus: the coordinator's and a worker's /metrics.
    const coordUrl = /metrics (http:\S+)/.exec(coord.output())?.[1];
    const coordText = await (await fetch(coordUrl as string)).text();
    expect(coordText).toContain('hotweights_coord_workers{component="coordinator"} 3');
    expect(coordText).toContain(
      'hotweights_coord_updates_total{result="committed",component="coordinator"} 2',
    );
    expect(coordText).toMatch(
      /hotweights_coord_rpc_seconds_count\{component="coordinator",method="precommit"\} 6/,
    );
    const workerUrl = /worker metrics on (http:\S+)/.exec(w1.output())?.[1];
    const workerText = await (await fetch(workerUrl as string)).text();
    expect(workerText).toMatch(/hotweights_worker_updates_total\{[^}]*result="committed"[^}]*\} 2/);
    expect(workerText).toContain('hotweights_buckets_total');
  });

  it('a worker killed before precommit aborts the update after its lease; survivors stay on the old version', async () => {
    const { fleet, spawnWorker, cli } = await setup(2);
    const w0 = spawnWorker(0);
    const w1 = spawnWorker(1);
    await cli(['coord-submit-plan', '--plan', fleet.planV0]);
    expect((await cli(['begin', '--version', 'v0', '--wait'])).code).toBe(0);
    await w0.waitFor('live v0');
    await w1.waitFor('live v0');

    await w1.kill('SIGKILL');
    await cli(['coord-submit-plan', '--plan', fleet.planV1]);
    const v1 = await cli(['begin', '--version', 'v1', '--wait']);
    expect(v1.code).toBe(1);
    // Whether rank 1's lease runs out before or during the update is timing: either way the
    // reason names rank 1.
    expect(v1.stdout).toMatch(
      /update v1: aborted.*(rank 1 has had no live worker|\(rank 1, node [^)]*\) lost its lease during the update)/,
    );
    expect(v1.stderr).toContain('[HW_COMMIT]: update v1 was aborted');
    await w0.waitFor(/update v1: aborted .*staging discarded, live v0/);
    for (const r of [0, 1]) await expectLive(fleet, r, fleet.ckptA, ['a.bin', 'b.bin']);
    expect(await fleet.live(0, 'c.bin')).toBeNull();
    const status = JSON.parse((await cli(['coord-status', '--json'])).stdout);
    expect(status.current_version).toBe('v0');
    expect(status.workers.map((w: { rank: number }) => w.rank)).toEqual([0]);
  });

  it('a coordinator killed mid-update and restarted on Redis finishes the update', async () => {
    const redis = await startRedis();
    cleanups.push(() => redis.stop());
    const redisEnv = { HOTWEIGHTS_COORD_BACKEND: 'redis', HOTWEIGHTS_REDIS_URL: redis.url };
    const { fleet, coord, spawnWorker, cli } = await setup(2, redisEnv);
    const w0 = spawnWorker(0);
    const w1 = spawnWorker(1);
    await cli(['coord-submit-plan', '--plan', fleet.planV0]);
    expect((await cli(['begin', '--version', 'v0', '--wait'])).code).toBe(0);

    await cli(['coord-submit-plan', '--plan', fleet.planV1]);
    await cli(['begin', '--version', 'v1', '--no-auto-commit']);
    await w0.waitFor('update v1: staged');
    await w1.waitFor('update v1: staged');
    await coord.stop('SIGKILL'); // a crash: nothing is flushed, nothing said to anyone

    const port = Number(coord.endpoint.split(':').pop());
    const pubPort = Number(coord.pubEndpoint.split(':').pop());
    const again = await startCoordProcess({ ...FAST, ...redisEnv }, { port, pubPort });
    cleanups.push(() => again.stop('SIGKILL'));
    // Its own line after the listening one: it may come in a later chunk.
    await again.waitFor('recovered update v1 (precommitted) with 2 worker(s)');
    // Nothing was applied while the coordinator was away.
    for (const r of [0, 1]) await expectLive(fleet, r, fleet.ckptA, ['a.bin', 'b.bin']);

    const commit = await cli(['commit', '--version', 'v1']);
    expect(commit.stdout).toContain('update v1: committed');
    for (const w of [w0, w1]) await w.waitFor('update v1: committed, live v1');
    for (const r of [0, 1]) await expectLive(fleet, r, fleet.ckptB, ['a.bin', 'b.bin', 'c.bin']);
  });

  // A worker restarted after the broadcasts: with peers' handles alive it copies from their
  // staging segments; once the handles expired (HOTWEIGHTS_HANDLE_TTL) it reads the source.
  for (const [how, ttl, expected] of [
    [
      'copies its share from a peer on its node',
      '30',
      /update v0: broadcasts are over; copying \d+ bucket\(s\) from rank\(s\) 0 on this node/,
    ],
    [
      'reads its share from the source once the handles expired',
      '0.2',
      /update v0: broadcasts are over; reading \d+ bucket\(s\) from the source/,
    ],
  ] as const) {
    it(`a worker restarted after the broadcasts ${how} and commits with the others`, async () => {
      const slow = { HOTWEIGHTS_LEASE_S: '8', HOTWEIGHTS_HEARTBEAT_S: '0.25', HOTWEIGHTS_HANDLE_TTL: ttl };
      const { fleet, coord, cli } = await setup(2, slow);
      const spawn = (rank: number) => {
        const w = startWorker({
          rank,
          worldSize: 2,
          endpoint: coord.endpoint,
          pubEndpoint: coord.pubEndpoint,
          fleet,
          env: slow,
        });
        cleanups.push(() => w.kill('SIGKILL'));
        return w;
      };
      const w0 = spawn(0);
      const w1 = spawn(1);
      await cli(['coord-submit-plan', '--plan', fleet.planV0]);
      await cli(['begin', '--version', 'v0', '--no-auto-commit']);
      await w0.waitFor('update v0: staged');
      await w1.waitFor('update v0: staged');
      await w1.kill('SIGKILL'); // its staging dies with it
      // ... and so does its prepared version (a lost disk): with it, the restarted rank would be
      // in doubt and keep it (fleet-truth.test.ts); without it, it stages its share again.
      await rm(join(fleet.target(1), 'versions'), { recursive: true, force: true });
      await rm(join(fleet.target(1), '.hotweights'), { recursive: true, force: true });
      const again = spawn(1);
      await again.waitFor(expected);
      await again.waitFor('update v0: staged');
      expect((await cli(['commit', '--version', 'v0'])).stdout).toContain('update v0: committed');
      for (const w of [w0, again]) await w.waitFor('update v0: committed, live v0');
      for (const r of [0, 1]) await expectLive(fleet, r, fleet.ckptA, ['a.bin', 'b.bin']);
    });
  }
});
