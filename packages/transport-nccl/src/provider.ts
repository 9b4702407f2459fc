/** The `nccl` TransportProvider that the TransportManager discovers through package.json. */
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
import { loadNative } from './native.js';
import { NcclTransport } from './nccl-transport.js';
import { probeLibraries, probeNccl } from './probe.js';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

export const provider: TransportProvider = {
  name: 'nccl',
  priority: BUILTIN_PRIORITIES.nccl ?? 40,
  version: pkg.version,
  description:
    'NCCL broadcast between CUDA devices (libnccl.so.2 and the CUDA runtime opened with dlopen), rendezvous at MASTER_ADDR:MASTER_PORT',
  async probe(ctx) {
    return probeNccl(ctx);
  },
  async create(options: TransportOptions): Promise<Transport> {
    // nccl meets through MASTER_ADDR/MASTER_PORT only (no coordinator exchange yet).
    const ctx = {
      rank: options.rank,
      worldSize: options.worldSize,
      config: options.config,
      launcher: readLaunchContext().launcher,
    };
    const probed = probeNccl(ctx, options.rendezvous);
    if (!probed.available) throw new TransportError(`the nccl transport is unavailable: ${probed.reason}`);
    const { native, error } = loadNative();
    const lib = probeLibraries(ctx);
    const at =
      options.worldSize === 1 ? { host: '127.0.0.1', port: 0 } : readMasterAddress(options.rendezvous);
    if (!native || !lib.ok || 'missing' in at)
      throw new TransportError(`the nccl transport is unavailable: ${error ?? 'probe changed'}`);
    return NcclTransport.open(native, { ...options, at, devices: lib.devices, split: lib.split });
  },
};

export default provider;
