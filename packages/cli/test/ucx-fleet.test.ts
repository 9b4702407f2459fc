/**
 * A fleet of separately started `hotweights worker` processes, each with its own node id, that
 * meets through the coordinator: every update's rendezvous gathers the node ids (all workers
 * choose one transport from them) and the UCX worker addresses (no MASTER_ADDR anywhere). Real
 * coordinator, real workers, real UCX over loopback TCP. Addresses come from configuration (the
 * route to the coordinator), so the same test runs with workers in network namespaces.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Fleet, makeFleet, startWorker } from './coord-fixture.js';
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

async function expectLive(fleet: Fleet, ranks: number, ckpt: string, files: string[]) {
  for (let rank = 0; rank < ranks; rank++) {
    for (const f of files) {
      const want = await readFile(join(ckpt, f));
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
    const v0 = await deploy(cli, fleet.planV0, 'v0');
    expect(v0.stdout).toContain('update v0: committed, precommitted 3/3');
    await expectLive(fleet, 3, fleet.ckptA, ['a.bin', 'b.bin']);
    for (const w of workers) {
      await w.waitFor('update v0: committed, live v0');
      expect(w.output()).toContain('transport local: all 3 rank(s) on node node-a');
    }
  });
});
