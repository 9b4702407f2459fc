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
import { UcxFetchTransport } from './fetch-transport.js';
import { probeUcx } from './probe.js';
import { loadUcp } from './ucp.js';
import { UcxTransport } from './ucx-transport.js';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

export const provider: TransportProvider = {
  name: 'ucx',
  priority: BUILTIN_PRIORITIES.ucx ?? 20,
  spansHosts: true,
  lateFetch: true,
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
        exchange: options.exchange !== undefined,
      },
      options.rendezvous,
    );
    if (!probed.available) throw new TransportError(`the ucx transport is unavailable: ${probed.reason}`);
    const { ucp } = loadUcp();
    if (!ucp) throw new TransportError('the ucx transport is unavailable');
    // A rank arriving after the broadcasts only fetches from the ranks that hold its buckets.
    if (options.exchange && options.rendezvous?.mode === 'fetch') {
      return UcxFetchTransport.open(ucp, { ...options, exchange: options.exchange });
    }
    if (options.exchange) {
      // A fleet meeting through the coordinator: rank 0 listens on any port of the address its
      // peers reach it by, and says where through the exchange.
      const host = options.config.advertiseHost ?? options.rendezvous?.host;
      if (!host) {
        throw new TransportError(
          'ucx: no address to listen on for the other workers: set HOTWEIGHTS_ADVERTISE_HOST',
          { code: 'HW_TRANSPORT_INVALID' },
        );
      }
      return UcxTransport.open(ucp, {
        ...options,
        rendezvous: { host, port: 0 },
        exchange: options.exchange,
      });
    }
    const at = readMasterAddress(options.rendezvous);
    if ('missing' in at) throw new TransportError('the ucx transport is unavailable');
    return UcxTransport.open(ucp, { ...options, rendezvous: at });
  },
};

export default provider;
