/**
 * `begin --wait` does not sit silent until an abort: it warns at once that a required rank has no
 * worker, and (piped, as here) prints no progress line.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { makeFleet, startWorker } from './coord-fixture.js';
import { startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';

const FAST = { HOTWEIGHTS_LEASE_S: '2', HOTWEIGHTS_HEARTBEAT_S: '0.25' };
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()?.();
});

describe('begin --wait', { timeout: 120_000 }, () => {
  it('warns that a required rank has no worker, then reports the abort', async () => {
    const fleet = await makeFleet(2);
    cleanups.push(() => fleet.cleanup());
    const coord = await startCoordProcess(FAST);
    cleanups.push(() => coord.stop('SIGKILL'));
    const w0 = startWorker({ rank: 0, worldSize: 2, ...coord, fleet, env: FAST });
    cleanups.push(() => w0.kill('SIGKILL'));
    await w0.waitFor('registered as');
    const env = { HOTWEIGHTS_COORD: coord.endpoint, ...FAST };
    expect((await runCli(['coord-submit-plan', '--plan', fleet.planV0], { env })).code).toBe(0);
    const r = await runCli(['begin', '--version', 'v0', '--wait'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      'hotweights: warning: no worker serves rank(s) 1 of update v0: it cannot commit until one registers (start `hotweights worker` with RANK=1)',
    );
    expect(r.stderr.indexOf('no worker serves')).toBeLessThan(r.stderr.indexOf('error [HW_COMMIT]'));
    expect(r.stderr).not.toContain('\r');
    expect(r.stdout).toContain('update v0: aborted');
  });
});
