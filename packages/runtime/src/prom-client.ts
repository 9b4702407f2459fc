/**
 * prom-client, loaded on first use: it and what it pulls in (@opentelemetry/api, tdigest) are
 * ~80 CommonJS files, about a quarter of a CLI start, and commands that export no metrics
 * (`plan`, `publish`, `replicate --no-metrics`) should not pay for them.
 */
import { createRequire } from 'node:module';

type PromClient = typeof import('prom-client');

let loaded: PromClient | undefined;

export function promClient(): PromClient {
  loaded ??= createRequire(import.meta.url)('prom-client') as PromClient;
  return loaded;
}
