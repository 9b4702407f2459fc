/**
 * SIGTERM and SIGINT stop a command promptly: a worker staging an update that cannot finish (its
 * peer never comes) discards what it staged, leaves live untouched and exits, instead of waiting
 * out the transfer timeout.
 */
import { readdir } from 'node:fs/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { makeFleet, startWorker } from './coord-fixture.js';
import { startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

describe('stopping', { timeout: 120_000 }, () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`a worker sent ${signal} while staging discards its staging and exits`, async () => {
      const fleet = await makeFleet(2);
      cleanups.push(() => fleet.cleanup());
      const coord = await startCoordProcess();
      cleanups.push(() => coord.stop('SIGKILL'));
      // Far longer than the test: a worker that waits for its missing peer never exits in time.
      const env = { HOTWEIGHTS_TRANSFER_TIMEOUT_S: '3600' };
      const w0 = startWorker({ rank: 0, worldSize: 2, ...coord, fleet, env });
      cleanups.push(() => w0.kill('SIGKILL'));
      await w0.waitFor('registered as');
      const cli = (args: string[]) => runCli(args, { env: { HOTWEIGHTS_COORD: coord.endpoint } });
      expect((await cli(['coord-submit-plan', '--plan', fleet.planV0])).stderr).toBe('');
      expect((await cli(['begin', '--version', 'v0'])).stderr).toBe('');
      await w0.waitFor('update v0: begun, staging rank 0');
      const exited = new Promise<number | null>((resolve) => w0.child.once('close', (code) => resolve(code)));
      w0.child.kill(signal);
      expect(await exited).toBe(0);
      expect(w0.output()).toContain('update v0: worker stopping; staging discarded, live none');
      expect(w0.output()).toContain('worker rank 0 stopped; live none');
      expect(await fleet.live(0, 'a.bin')).toBeNull();
      expect(await readdir(fleet.stagingDir)).toEqual([]);
    });
  }
});
