/** `hotweights transports --nodes …` explains which transport a fleet on those nodes would use. */
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const ENV = { HOTWEIGHTS_COORD: '' };

describe('hotweights transports for a fleet', () => {
  it('says ucx for ranks on several nodes (mpi needs mpirun), local for one node', async () => {
    const spread = await runCli(['transports', '--nodes', 'gpu-b,gpu-a,gpu-b'], { env: ENV });
    expect(spread.code).toBe(0);
    expect(spread.stdout).toMatch(
      /^fleet \(--nodes\): ucx: ranks on 2 nodes \(gpu-a, gpu-b\) need a transport that spans hosts \(mpi: .*run under mpirun\)$/m,
    );
    const one = await runCli(['transports', '--nodes', 'gpu-a,gpu-a', '--json'], { env: ENV });
    expect(JSON.parse(one.stdout).fleet).toEqual({
      source: '--nodes',
      nodes: ['gpu-a', 'gpu-a'],
      transport: 'local',
      why: 'local: all 2 rank(s) on node gpu-a, shared memory is the fastest path',
    });
  });

  it('refuses a malformed node list in one line', async () => {
    const bad = await runCli(['transports', '--nodes', 'a,,b'], { env: ENV });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(
      'hotweights: error [HW_CONFIG]: --nodes "a,,b": expected node ids separated by commas',
    );
  });
});
