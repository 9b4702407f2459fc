/**
 * A coordinator-driven update with device staging: `coord-serve`, two `hotweights worker
 * --device cuda --pinned --transport cuda-ipc` processes over the driver stand-in (a test double
 * of the CUDA driver API; no GPU ran here), `begin --wait`: both ranks stage on the (stand-in)
 * device, move buckets over CUDA IPC, verify by copying back, precommit and commit v0 then v1.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { makeFleet, startWorker } from '../../cli/test/coord-fixture.js';
import { startCoordProcess } from '../../cli/test/coord-process.js';
import { runCli } from '../../cli/test/run-cli.js';
import { standInEnv } from './stand-in.js';

const FAST = { HOTWEIGHTS_LEASE_S: '2', HOTWEIGHTS_HEARTBEAT_S: '0.25' };
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

describe('worker --device cuda over the driver stand-in', { timeout: 240_000 }, () => {
  it('stages on the device, moves buckets over CUDA IPC and commits v0 then v1 on both ranks', async () => {
    const fleet = await makeFleet(2);
    cleanups.push(() => fleet.cleanup());
    const coord = await startCoordProcess(FAST);
    cleanups.push(() => coord.stop('SIGKILL'));
    const workers = [0, 1].map((rank) => {
      const w = startWorker({
        rank,
        worldSize: 2,
        endpoint: coord.endpoint,
        pubEndpoint: coord.pubEndpoint,
        fleet,
        transport: 'cuda-ipc',
        args: ['--device', 'cuda', '--pinned'],
        env: { ...FAST, ...standInEnv() },
      });
      cleanups.push(() => w.kill('SIGKILL'));
      return w;
    });
    for (const w of workers) await w.waitFor('registered as');
    const cli = (args: string[]) =>
      runCli(args, { env: { HOTWEIGHTS_COORD: coord.endpoint, ...FAST }, timeoutMs: 120_000 });
    for (const [version, plan, ckpt, files] of [
      ['v0', fleet.planV0, fleet.ckptA, ['a.bin', 'b.bin']],
      ['v1', fleet.planV1, fleet.ckptB, ['a.bin', 'b.bin', 'c.bin']],
    ] as const) {
      expect((await cli(['coord-submit-plan', '--plan', plan])).code).toBe(0);
      const begun = await cli(['begin', '--version', version, '--wait']);
      expect(begun.stdout, begun.stderr).toContain(`update ${version}: committed, precommitted 2/2`);
      for (const w of workers) await w.waitFor(`update ${version}: committed, live ${version}`);
      for (const r of [0, 1])
        for (const f of files)
          expect((await fleet.live(r, f))?.equals(await readFile(join(ckpt, f))), `rank ${r} ${f}`).toBe(
            true,
          );
    }
  });
});
