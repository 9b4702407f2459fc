/**
 * Serves a prom-client registry at http://HOST:PORT/metrics. Every long-running hotweights
 * process (replicate :9097, worker :9099, coordinator :9100) starts one; port 0 picks a free port.
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HotweightsError } from '@hotweights/core';
import type { Registry } from 'prom-client';
import { promClient } from './prom-client.js';

export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/** A fresh registry with the default labels every hotweights metric carries. */
export function createMetricsRegistry(labels: Record<string, string> = {}): Registry {
  const registry = new (promClient().Registry)();
  registry.setDefaultLabels(labels);
  return registry;
}

export async function startMetricsServer(
  registry: Registry,
  port: number,
  // Private unless the caller names a host (HOTWEIGHTS_METRICS_HOST or the endpoint's host).
  host = '127.0.0.1',
): Promise<MetricsServer> {
  // node:http is loaded only by a command that serves metrics (~10 ms of start-up otherwise).
  const { createServer } = await import('node:http');
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url !== '/metrics' && !req.url?.startsWith('/metrics?'))) {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics\n');
      return;
    }
    registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (err: unknown) =>
        res.writeHead(500, { 'content-type': 'text/plain' }).end(`metrics failed: ${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(
        new HotweightsError(
          'HW_METRICS_PORT',
          `cannot serve metrics on ${host}:${port}: ${err.code === 'EADDRINUSE' ? 'port in use (pick another with --metrics-port, or 0)' : err.message}`,
          { cause: err },
        ),
      ),
    );
    server.listen(port, host, () => resolve());
  });
  server.unref();
  const actual = (server.address() as AddressInfo).port;
  return {
    port: actual,
    url: `http://${host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host}:${actual}/metrics`,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
