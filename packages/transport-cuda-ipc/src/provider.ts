import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { TransportProvider } from '@hotweights/core';
import { BUILTIN_PRIORITIES } from '@hotweights/core';
import { CudaIpcTransport } from './cuda-ipc-transport.js';
import { CudaDeviceStaging } from './device-staging.js';
import { PACKAGE_ROOT } from './native.js';
import { probeCudaIpc } from './probe.js';

const version = (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string })
  .version;

export const cudaIpcTransportProvider: TransportProvider = {
  name: 'cuda-ipc',
  priority: BUILTIN_PRIORITIES['cuda-ipc'] ?? 50,
  version,
  description:
    'GPUs on one node: CUDA IPC handles, device-to-device copies on streams (driver opened with dlopen)',
  device: 'cuda',
  async probe(ctx) {
    return probeCudaIpc(ctx);
  },
  create: (options) => CudaIpcTransport.create(options),
  createStaging: (options) => CudaDeviceStaging.open(options),
};
