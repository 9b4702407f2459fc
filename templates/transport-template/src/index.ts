/**
 * hotweights-transport-tcp: the provider that hotweights discovers through this package's
 * package.json (`"hotweights": {"transport": "./dist/index.js", "coreApi": "^1.1.0"}`).
 * Export it as `provider` (or as the default export).
 */
import { readFileSync } from 'node:fs';
import type { ProbeContext, ProbeResult, TransportOptions, TransportProvider } from '@hotweights/core';
import { TransportError } from '@hotweights/core';
import { readRendezvous } from './rendezvous.js';
import { TcpTransport } from './tcp-transport.js';

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

export const provider: TransportProvider = {
  name: 'tcp',
  // Below every built-in (local is 10): chosen automatically only when nothing else is
  // available, or when forced with `--transport tcp` / HOTWEIGHTS_TRANSPORT=tcp.
  priority: 5,
  version: pkg.version,
  description: 'Broadcast over TCP sockets through rank 0 (MASTER_ADDR:MASTER_PORT)',

  // Fast and never throws: it only looks at the rendezvous, it does not touch the network.
  async probe(_ctx: ProbeContext): Promise<ProbeResult> {
    const rv = readRendezvous(undefined);
    if ('missing' in rv) return { available: false, reason: rv.missing };
    return { available: true, detail: `rank 0 listens on ${rv.host}:${rv.port}` };
  },

  async create(options: TransportOptions): Promise<TcpTransport> {
    const rv = readRendezvous(options.rendezvous);
    if ('missing' in rv && options.worldSize > 1) throw new TransportError(`tcp: ${rv.missing}`);
    const timeoutMs = options.config.transferTimeoutS * 1000;
    return TcpTransport.open(options.rank, options.worldSize, 'missing' in rv ? undefined : rv, timeoutMs);
  },
};

export default provider;
export { type Rendezvous, readRendezvous } from './rendezvous.js';
export { TcpTransport } from './tcp-transport.js';
