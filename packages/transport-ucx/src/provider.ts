/** The `ucx` TransportProvider that the TransportManager discovers through package.json. */
import { createRequire } from 'node:module';
import {
  BUILTIN_PRIORITIES,
  readLaunchContext,
  readMasterAddress,
  type Transport,
  TransportError,
  type TransportOptions,
  type TransportProvider,
} from '@hotweights/core';
import { probeUcx } from './probe.js';
import { loadUcp } from './ucp.js';
import { UcxTransport } from './ucx-transport.js';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

export const provider: TransportProvider = {
  name: 'ucx',
  priority: BUILTIN_PRIORITIES.ucx ?? 20,
  version: pkg.version,
  description:
    'UCX (libucp through koffi): pipelined chain broadcast over TCP, shared memory or RDMA, across hosts',
  async probe(ctx) {
    return probeUcx(ctx);
  },
  async create(options: TransportOptions): Promise<Transport> {
    const probed = probeUcx(
      {
        rank: options.rank,
        worldSize: options.worldSize,
        launcher: readLaunchContext().launcher,
        config: options.config,
      },
      options.rendezvous,
    );
    if (!probed.available) throw new TransportError(`the ucx transport is unavailable: ${probed.reason}`);
    const { ucp } = loadUcp();
    const at = readMasterAddress(options.rendezvous);
    if (!ucp || 'missing' in at) throw new TransportError('the ucx transport is unavailable');
    return UcxTransport.open(ucp, { ...options, rendezvous: at });
  },
};

export default provider;
