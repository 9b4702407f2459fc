/** The `mpi` TransportProvider that the TransportManager discovers through package.json. */
import { createRequire } from 'node:module';
import {
  BUILTIN_PRIORITIES,
  readLaunchContext,
  type Transport,
  TransportError,
  type TransportOptions,
  type TransportProvider,
} from '@hotweights/core';
import { MpiTransport } from './mpi-transport.js';
import { loadNative } from './native.js';
import { probeMpi } from './probe.js';
import { MpiSession } from './session.js';

const pkg = createRequire(import.meta.url)('../package.json') as { version: string };

export const provider: TransportProvider = {
  name: 'mpi',
  priority: BUILTIN_PRIORITIES.mpi ?? 30,
  spansHosts: true,
  version: pkg.version,
  description: 'MPI broadcast over Open MPI (libmpi opened with dlopen), for jobs started by mpirun',
  async probe(ctx) {
    return probeMpi(ctx);
  },
  async create(options: TransportOptions): Promise<Transport> {
    const launch = readLaunchContext();
    const probed = probeMpi({
      rank: options.rank,
      worldSize: options.worldSize,
      launcher: launch.launcher,
      config: options.config,
    });
    if (!probed.available) throw new TransportError(`the mpi transport is unavailable: ${probed.reason}`);
    const { native, error } = loadNative();
    if (!native) throw new TransportError(`the mpi transport is unavailable: ${error}`);
    const session = MpiSession.open(native, options.config.mpiLibrary);
    const { rank, size } = session.world;
    if (rank !== options.rank || size !== options.worldSize) {
      throw new TransportError(
        `MPI says this is rank ${rank} of ${size}, but the transport was asked for rank ${options.rank} of ${options.worldSize}`,
        { code: 'HW_TRANSPORT_INVALID' },
      );
    }
    return new MpiTransport(session, options);
  },
};

export default provider;
