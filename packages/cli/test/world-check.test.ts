/**
 * A plan made for one world, run in another: `hotweights replicate` (its launcher and a rank under
 * mpirun/torchrun alike) and `hotweights worker` refuse it before anything moves, with one line
 * that names the world it was made for and the re-plan that fixes it. Nothing reaches the target
 * or staging.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fleet, makeFleet, startWorker } from './coord-fixture.js';
import { startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

let fleet: Fleet;
let plan: string;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  fleet = await makeFleet(1);
  env = { HOTWEIGHTS_STAGING_DIR: fleet.stagingDir, HOTWEIGHTS_STATE_DIR: join(fleet.dir, 'state') };
  plan = join(fleet.dir, 'no-world.json');
  // The user's mistake: a plan made without --world-size (so for world size 1).
  const made = await runCli(
    ['plan', '--next', join(fleet.dir, 'm_v0.json'), '--checkpoint', fleet.ckptA, '--output', plan],
    { env },
  );
  expect(made.code, made.stderr).toBe(0);
}, 60_000);
afterAll(() => fleet.cleanup());

function expectNothingMoved(rank: number): void {
  expect(existsSync(join(fleet.target(rank), 'current'))).toBe(false);
  expect(readdirSync(fleet.stagingDir).filter((n) => n.endsWith('.seg'))).toEqual([]);
}

describe('the plan is checked against the world before anything moves', { timeout: 120_000 }, () => {
  it('replicate --world-size 3 on a plan for world size 1 says so and how to re-plan', async () => {
    const res = await runCli(
      [
        'replicate',
        '--plan',
        plan,
        '--world-size',
        '3',
        '--commit',
        '--target',
        fleet.target(0),
        '--no-metrics',
      ],
      { env },
    );
    expect(res.code).toBe(1);
    expect(res.stderr.trim().split('\n')).toHaveLength(1);
    expect(res.stderr).toMatch(
      /no-world\.json was made for world size 1, but this job has 3 rank\(s\): re-plan with `hotweights plan … --world-size 3`/,
    );
    expectNothingMoved(0);

    // One rank of a job started by a launcher (RANK/WORLD_SIZE) checks the same way.
    const rank = await runCli(['replicate', '--plan', plan, '--target', fleet.target(1), '--no-metrics'], {
      env: { ...env, RANK: '1', WORLD_SIZE: '2' },
    });
    expect(rank.code).toBe(1);
    expect(rank.stderr).toMatch(
      /was made for world size 1, but this job has 2 rank\(s\): re-plan with `hotweights plan … --world-size 2`/,
    );
    expectNothingMoved(1);
  });

  it('a worker in a world of two refuses the plan for world size 1: the update aborts with the fix', async () => {
    const coord = await startCoordProcess({ HOTWEIGHTS_LEASE_S: '2', HOTWEIGHTS_HEARTBEAT_S: '0.25' });
    const worker = startWorker({
      rank: 0,
      worldSize: 2,
      endpoint: coord.endpoint,
      pubEndpoint: coord.pubEndpoint,
      fleet,
      env: { HOTWEIGHTS_HEARTBEAT_S: '0.25' },
    });
    try {
      await worker.waitFor('registered as');
      const cli = (args: string[]) => runCli(args, { env: { ...env, HOTWEIGHTS_COORD: coord.endpoint } });
      expect((await cli(['coord-submit-plan', '--plan', plan])).code).toBe(0);
      const begin = await cli(['begin', '--version', 'v0', '--wait']);
      expect(begin.code).toBe(1);
      const fix =
        /plan v0 \(from the coordinator\) was made for world size 1, but this job has 2 rank\(s\): re-plan with `hotweights plan … --world-size 2`/;
      expect(begin.stderr).toMatch(/update v0 was aborted: rank 0 \(.+\): /);
      expect(begin.stderr).toMatch(fix);
      await worker.waitFor(fix);
      expectNothingMoved(0);
    } finally {
      await worker.kill('SIGKILL');
      await coord.stop('SIGKILL');
    }
  });
});
