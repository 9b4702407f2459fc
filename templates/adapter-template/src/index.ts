/** The `kv` AdapterProvider that hotweights discovers through package.json. */
import { type AdapterOptions, type AdapterProvider, ConfigError } from '@hotweights/core';
import { KvAdapter } from './kv-adapter.js';

export { KvAdapter, type KvIndex } from './kv-adapter.js';

export const provider: AdapterProvider = {
  name: 'kv',
  description: 'each version one JSON index of content-addressed blobs (template adapter)',
  // Never throws: what is missing becomes the reason `hotweights adapters` shows.
  async probe(options: AdapterOptions) {
    if (!options.target) return { available: false, reason: 'needs a target directory (--target DIR)' };
    return { available: true, detail: options.target };
  },
  async create(options: AdapterOptions) {
    if (!options.target) throw new ConfigError('the kv adapter needs a target directory: add --target DIR');
    return new KvAdapter(options.target);
  },
};

export default provider;
