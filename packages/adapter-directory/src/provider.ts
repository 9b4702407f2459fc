/** The `directory` AdapterProvider: what `--adapter directory` (or `--target` alone) opens. */
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { type AdapterOptions, type AdapterProvider, ConfigError } from '@hotweights/core';
import { DirectoryAdapter } from './directory-adapter.js';

export const directoryAdapterProvider: AdapterProvider = {
  name: 'directory',
  description: 'complete versions side by side in a directory; `current` switches with one rename',
  async probe(options: AdapterOptions) {
    if (!options.target) return { available: false, reason: 'needs a target directory (--target DIR)' };
    const s = await stat(options.target).catch(() => null);
    if (s && !s.isDirectory()) return { available: false, reason: `${options.target} is not a directory` };
    return { available: true, detail: resolve(options.target) };
  },
  async create(options: AdapterOptions) {
    if (!options.target)
      throw new ConfigError('the directory adapter needs a target directory: add --target DIR');
    return new DirectoryAdapter({
      target: options.target,
      rank: options.rank,
      ...(options.recordCommitted ? { stateDir: options.config.stateDir } : {}),
    });
  },
};
