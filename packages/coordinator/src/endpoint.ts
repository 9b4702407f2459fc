/** ZeroMQ endpoint helpers: validation and the "events on request port + 1" rule. */
import { ConfigError } from '@hotweights/core';

const TCP = /^tcp:\/\/(\[[^\]]+\]|[^:/]+):(\d+|\*)$/;

/** Throws ConfigError unless `endpoint` is `tcp://HOST:PORT` (PORT may be `*` or 0 to bind) or `ipc://PATH`. */
export function checkEndpoint(endpoint: string, what = 'endpoint'): string {
  if (TCP.test(endpoint) || /^ipc:\/\/.+/.test(endpoint) || /^inproc:\/\/.+/.test(endpoint)) return endpoint;
  throw new ConfigError(
    `${what} ${JSON.stringify(endpoint)}: expected tcp://HOST:PORT (e.g. tcp://127.0.0.1:5555) or ipc://PATH`,
  );
}

/** Port 0 means "any free port" to us; ZeroMQ spells it `*`. */
export function bindable(endpoint: string): string {
  return endpoint.replace(/:0$/, ':*');
}

/** The PUB endpoint next to a request endpoint: same host, port + 1 (ipc: path + `.events`). */
export function defaultPubEndpoint(endpoint: string): string {
  const m = TCP.exec(endpoint);
  if (m) {
    const port = m[2] === '*' || m[2] === '0' ? '*' : String(Number(m[2]) + 1);
    return `tcp://${m[1]}:${port}`;
  }
  if (endpoint.startsWith('ipc://') || endpoint.startsWith('inproc://')) return `${endpoint}.events`;
  return checkEndpoint(endpoint);
}

/** An endpoint a client can connect to: a wildcard bind host becomes the host the client used. */
export function connectable(bound: string, viaEndpoint: string): string {
  const b = TCP.exec(bound);
  const v = TCP.exec(viaEndpoint);
  if (!b || !v) return bound;
  const host = b[1] === '0.0.0.0' || b[1] === '*' || b[1] === '[::]' ? v[1] : b[1];
  return `tcp://${host}:${b[2]}`;
}

/** True for an endpoint only this host can reach (loopback TCP, ipc, inproc). */
export function isLoopbackEndpoint(endpoint: string): boolean {
  const m = TCP.exec(endpoint);
  if (!m) return true;
  return isLoopbackHost(m[1] ?? '');
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

/**
 * Where a process's metrics server listens unless HOTWEIGHTS_METRICS_HOST says otherwise: the
 * coordinator's own bind host (`serving`), or for a worker loopback when its coordinator is on
 * loopback and every interface otherwise (Prometheus scrapes it from elsewhere).
 */
export function metricsHostFor(endpoint: string, role: 'serving' | 'connecting'): string {
  const m = TCP.exec(endpoint);
  if (!m) return '127.0.0.1';
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
  if (isLoopbackHost(host)) return host === 'localhost' ? '127.0.0.1' : host;
  if (role === 'connecting') return '0.0.0.0';
  return host === '*' ? '0.0.0.0' : host;
}

/**
 * This host's address on its route to the coordinator: what peers on other hosts most likely
 * reach it by (HOTWEIGHTS_ADVERTISE_HOST overrides). A connected UDP socket asks the kernel's
 * routing table; nothing is sent. Loopback for ipc:// and inproc:// endpoints.
 */
export async function localAddressToward(endpoint: string): Promise<string> {
  const m = TCP.exec(endpoint);
  if (!m) return '127.0.0.1';
  const host = (m[1] ?? '').replace(/^\[|\]$/g, '');
  const { createSocket } = await import('node:dgram');
  const { isIPv6 } = await import('node:net');
  const sock = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      sock.once('error', reject);
      sock.connect(Number(m[2]) || 9, host, () => resolve());
    });
    return sock.address().address;
  } finally {
    sock.close();
  }
}
