/**
 * The control plane end to end with real processes: `coord-serve`, `hotweights worker` per rank
 * (directory adapter, local transport over /dev/shm), and the CLI driving updates.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Dealer } from 'zeromq';
import { type Fleet, makeFleet, startWorker, type WorkerProcess } from './coord-fixture.js';
import { type CoordProcess, startCoordProcess } from './coord-process.js';
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
    const begin = runCli(['begin', '--version=v0', '--wait'], {
      env: { HOTWEIGHTS_COORD: coord.endpoint },
      timeoutMs: 120_000,
    });
    // Rank 2 starts only after the update began: it learns about it from status and joins in.
    await w0.waitFor('update v0: begun');
    const w2 = spawnWorker(2);
    const result = await begin;
    expect(result.stderr).toBe('');
    expect(result.stdout).toContain('update v0: committed, precommitted 3/3');
    for (const w of [w0, w1, w2]) await w.waitFor('update v0: committed, live v0');
    for (const r of [0, 1, 2]) await expectLive(fleet, r, fleet.ckptA, ['a.bin', 'b.bin']);

    await cli(['coord-submit-plan', '--plan', fleet.planV1]);
    const v1 = await cli(['begin', '--version=v1', '--wait']);
    expect(v1.stdout).toContain('update v1: committed');
    for (const w of [w0, w1, w2]) await w.waitFor('update v1: committed, live v1');
    for (const r of [0, 1, 2]) await expectLive(fleet, r, fleet.ckptB, ['a.bin', 'b.bin', 'c.bin']);
    const status = JSON.parse((await cli(['coord-status', '--json'])).stdout);
    expect(status.current_version).toBe('v1');
    expect(status.workers.map((w: { live_version: string }) => w.live_version)).toEqual(['v1', 'v1', 'v1']);
  });
});
