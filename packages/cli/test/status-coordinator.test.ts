/**
 * `hotweights status --endpoint`: the local view, then the coordinator's, against a real
 * `coord-serve` process with a real worker that has committed v0.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Fleet, makeFleet, startWorker, type WorkerProcess } from './coord-fixture.js';
import { type CoordProcess, freePort, startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

let fleet: Fleet;
let coord: CoordProcess;
let worker: WorkerProcess;
const state = mkdtempSync(join(tmpdir(), 'hw-status-coord-'));
const local = () => ({ HOTWEIGHTS_STAGING_DIR: fleet.stagingDir, HOTWEIGHTS_STATE_DIR: state });

beforeAll(async () => {
  fleet = await makeFleet(1);
  coord = await startCoordProcess();
  worker = startWorker({
    rank: 0,
    worldSize: 1,
    endpoint: coord.endpoint,
    pubEndpoint: coord.pubEndpoint,
    fleet,
  });
  await worker.waitFor('registered as');
  const env = { HOTWEIGHTS_COORD: coord.endpoint };
  expect((await runCli(['coord-submit-plan', '--plan', fleet.planV0], { env })).code).toBe(0);
  const begin = await runCli(['begin', '--version', 'v0', '--wait'], { env, timeoutMs: 120_000 });
  expect(begin.code, begin.stderr).toBe(0);
  await worker.waitFor('update v0: committed, live v0');
}, 180_000);

afterAll(async () => {
  await worker?.kill('SIGKILL');
  await coord?.stop('SIGKILL');
  await fleet?.cleanup();
  rmSync(state, { recursive: true, force: true });
});

describe('hotweights status with a coordinator', { timeout: 120_000 }, () => {
  it('--endpoint adds the coordinator view after the local one', async () => {
    const res = await runCli(['status', '--endpoint', coord.endpoint, '--target', fleet.target(0)], {
      env: local(),
    });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    const lines = res.stdout.split('\n');
    const localAt = lines.findIndex((l) => l.startsWith(`staging ${fleet.stagingDir}:`));
    const coordAt = lines.findIndex((l) => l.startsWith(`coordinator ${coord.endpoint} (backend memory`));
    expect(localAt).toBeGreaterThanOrEqual(0);
    expect(coordAt).toBeGreaterThan(localAt);
    expect(res.stdout).toContain(`target ${fleet.target(0)}: live v0, previous none`);
    expect(res.stdout).toContain('current version: v0');
    expect(res.stdout).toContain('fleet: converged: 1 of 1 live on v0');
    expect(res.stdout).toContain('last finished: update v0: committed, precommitted 1/1');
    expect(res.stdout).toMatch(/workers: 1\n {2}rank 0\/1 {2}\S+ {2}live v0 {2}lease [\d.]+ s/);
  });

  it('takes the endpoint from HOTWEIGHTS_COORD, and --json nests the coordinator status', async () => {
    const res = await runCli(['status', '--json'], { env: { ...local(), HOTWEIGHTS_COORD: coord.endpoint } });
    expect(res.code, res.stderr).toBe(0);
    const report = JSON.parse(res.stdout);
    expect(report.staging_dir).toBe(fleet.stagingDir);
    expect(report.coordinator).toMatchObject({
      endpoint: coord.endpoint,
      backend: 'memory',
      current_version: 'v0',
      active: null,
    });
    expect(report.coordinator.workers).toEqual([expect.objectContaining({ rank: 0, live_version: 'v0' })]);
    expect(report.coordinator.fleet).toMatchObject({
      state: 'converged',
      summary: 'converged: 1 of 1 live on v0',
      behind: [],
      ranks: [expect.objectContaining({ rank: 0, live_version: 'v0', behind: false, sync_error: null })],
    });
  });

  it('without an endpoint shows only the local view; an unreachable one is a clear error', async () => {
    const plain = await runCli(['status', '--json'], { env: { ...local(), HOTWEIGHTS_COORD: '' } });
    expect(plain.code, plain.stderr).toBe(0);
    expect(JSON.parse(plain.stdout).coordinator).toBeNull();

    const nobody = `tcp://127.0.0.1:${await freePort()}`;
    const res = await runCli(['status', '--endpoint', nobody, '--timeout', '1'], { env: local() });
    expect(res.code).toBe(1);
    expect(res.stdout).toContain(`staging ${fleet.stagingDir}:`);
    expect(res.stderr).toContain(`coordinator at ${nobody} did not answer status within 1 s`);
  });
});
