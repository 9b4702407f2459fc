/**
 * An in-process coordinator for one-host runs (the demo, tests, scripts): memory backend, free
 * loopback ports, optional metrics registry. Workers in other processes reach it at `endpoint`.
 */
import type { HotweightsConfig } from '@hotweights/core';
import type { Registry } from 'prom-client';
import type { StateBackend } from './backends/backend.js';
import { CoordinatorServer } from './server.js';

export interface EmbeddedCoordinatorOptions {
  /** Default `tcp://127.0.0.1:0` (any free port); events on the next free port. */
  readonly endpoint?: string;
  readonly pubEndpoint?: string;
  readonly backend?: StateBackend;
  /** Lease, heartbeat, handle TTL and token; default: from loadConfig() values given here. */
  readonly config?: Partial<Pick<HotweightsConfig, 'leaseS' | 'heartbeatS' | 'handleTtlS' | 'coordToken'>>;
  readonly metricsRegistry?: Registry;
  readonly log?: (line: string) => void;
}

export interface EmbeddedCoordinator {
  /** Request endpoint to hand to workers (HOTWEIGHTS_COORD). */
  readonly endpoint: string;
  readonly pubEndpoint: string;
  readonly server: CoordinatorServer;
  close(): Promise<void>;
}

export async function startEmbeddedCoordinator(
  options: EmbeddedCoordinatorOptions = {},
): Promise<EmbeddedCoordinator> {
  const endpoint = options.endpoint ?? 'tcp://127.0.0.1:0';
  const server = await CoordinatorServer.start({
    endpoint,
    // With port 0 the "port + 1" rule has no meaning: let the events pick their own free port.
    pubEndpoint: options.pubEndpoint ?? (endpoint.endsWith(':0') ? 'tcp://127.0.0.1:0' : undefined),
    backend: options.backend,
    token: options.config?.coordToken,
    leaseS: options.config?.leaseS ?? 10,
    heartbeatS: options.config?.heartbeatS ?? 2,
    handleTtlS: options.config?.handleTtlS ?? 30,
    metricsRegistry: options.metricsRegistry,
    log: options.log,
  });
  return { endpoint: server.endpoint, pubEndpoint: server.pubEndpoint, server, close: () => server.close() };
}
