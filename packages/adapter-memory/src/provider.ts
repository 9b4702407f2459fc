/** The `memory` AdapterProvider: the CLI's default when no `--target` is given. */
import type { AdapterOptions, AdapterProvider } from '@hotweights/core';
import { MemoryAdapter } from './adapter-memory.js';

export const memoryAdapterProvider: AdapterProvider = {
  name: 'memory',
  description: 'versions in process memory (tests, demos, verify-only runs); setting partial=true',
  async probe() {
    return { available: true };
  },
  async create(options: AdapterOptions) {
    return new MemoryAdapter({ partial: options.settings?.partial === 'true' });
  },
};
