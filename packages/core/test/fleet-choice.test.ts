import {
  chooseTransportForFleet,
  loadConfig,
  NoTransportError,
  type ProbeContext,
  TransportManager,
  type TransportProvider,
} from '@hotweights/core';
import { describe, expect, it } from 'vitest';

const ctx: ProbeContext = { rank: 0, worldSize: 3, launcher: 'env', config: loadConfig({}) };
const up = async () => ({ available: true as const });
const down = (reason: string) => async () => ({ available: false as const, reason });

function provider(name: string, priority: number, spansHosts: boolean, probe: TransportProvider['probe']) {
  const p: TransportProvider = {
    name,
    priority,
    spansHosts,
    probe,
    create: async () => {
      throw new Error('not used');
    },
  };
  return p;
}

async function probed(mpiUp: boolean, ucxUp: boolean) {
  const m = new TransportManager({
    providers: [
      provider('local', 10, false, up),
      provider('mpi', 30, true, mpiUp ? up : down('not started by an MPI launcher; run under mpirun')),
      provider('ucx', 20, true, ucxUp ? up : down('libucp.so.0 could not be opened')),
    ],
  });
  return m.probeAll(ctx);
}

describe('chooseTransportForFleet', () => {
  it('keeps local when every rank reports the same node, whatever has a higher priority', async () => {
    const c = chooseTransportForFleet(await probed(true, true), ['n1', 'n1', 'n1'], undefined);
    expect(c.candidate.name).toBe('local');
    expect(c.why).toBe('local: all 3 rank(s) on node n1, shared memory is the fastest path');
  });

  it('takes ucx for ranks on several nodes outside mpirun, saying why not mpi', async () => {
    const c = chooseTransportForFleet(await probed(false, true), ['b', 'a', 'b'], undefined);
    expect(c.candidate.name).toBe('ucx');
    expect(c.why).toBe(
      'ucx: ranks on 2 nodes (a, b) need a transport that spans hosts (mpi: not started by an MPI launcher; run under mpirun)',
    );
  });

  it('takes mpi under mpirun', async () => {
    expect(chooseTransportForFleet(await probed(true, true), ['a', 'b'], undefined).candidate.name).toBe(
      'mpi',
    );
  });

  it('refuses a fleet on several nodes with no transport that spans hosts, with every reason', async () => {
    const p = await probed(false, false);
    expect(() => chooseTransportForFleet(p, ['a', 'b'], undefined)).toThrow(NoTransportError);
    expect(() => chooseTransportForFleet(p, ['a', 'b'], undefined)).toThrow(
      /^ranks on 2 nodes \(a, b\) but no transport that spans hosts is available: mpi: not started by an MPI launcher; run under mpirun; ucx: libucp.so.0 could not be opened/,
    );
  });

  it('a forced name wins and says so', async () => {
    const c = chooseTransportForFleet(await probed(false, true), ['a', 'b'], 'local');
    expect(c.candidate.name).toBe('local');
    expect(c.why).toBe('local: forced (--transport or HOTWEIGHTS_TRANSPORT); ranks on 2 nodes (a, b)');
  });
});
