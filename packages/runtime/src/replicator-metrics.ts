/** Prometheus metrics of the Replicator, registered in a registry from createMetricsRegistry. */
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';
import { promClient } from './prom-client.js';

export interface ReplicatorMetrics {
  readonly bytes: Counter<'role'>;
  readonly buckets: Counter<'role'>;
  readonly bucketSeconds: Histogram<'role'>;
  readonly throughput: Gauge<'role'>;
  readonly inflightBuckets: Gauge;
  readonly inflightBytes: Gauge;
  readonly window: Gauge;
  readonly verifyFailures: Counter;
  readonly lastBucketSize: Gauge;
}

const cache = new WeakMap<Registry, ReplicatorMetrics>();

/** The Replicator's metrics in `registry` (created once per registry). */
export function createReplicatorMetrics(registry: Registry): ReplicatorMetrics {
  const existing = cache.get(registry);
  if (existing) return existing;
  const { Counter, Gauge, Histogram } = promClient();
  const registers = [registry];
  const m: ReplicatorMetrics = {
    bytes: new Counter({
      name: 'hotweights_bytes_replicated_total',
      help: 'Bucket bytes moved by this process (role: send on the source, land on consumers)',
      labelNames: ['role'],
      registers,
    }),
    buckets: new Counter({
      name: 'hotweights_buckets_total',
      help: 'Buckets completed by this process',
      labelNames: ['role'],
      registers,
    }),
    bucketSeconds: new Histogram({
      name: 'hotweights_bucket_seconds',
      help: 'Seconds from a bucket entering the window to it being sent (source) or landed and verified (consumer)',
      labelNames: ['role'],
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    throughput: new Gauge({
      name: 'hotweights_throughput_gbps',
      help: 'Bytes per second of the current or last update, in GB/s (1e9 B/s)',
      labelNames: ['role'],
      registers,
    }),
    inflightBuckets: new Gauge({
      name: 'hotweights_inflight_buckets',
      help: 'Buckets in the window now',
      registers,
    }),
    inflightBytes: new Gauge({
      name: 'hotweights_inflight_bytes',
      help: 'Bytes in the window now',
      registers,
    }),
    window: new Gauge({
      name: 'hotweights_window_buckets',
      help: 'Configured window size in buckets (HOTWEIGHTS_INFLIGHT_BUCKETS)',
      registers,
    }),
    verifyFailures: new Counter({
      name: 'hotweights_verify_failures_total',
      help: 'Items whose landed bytes did not match their hash',
      registers,
    }),
    lastBucketSize: new Gauge({
      name: 'hotweights_last_bucket_size_bytes',
      help: 'Size of the last completed bucket',
      registers,
    }),
  };
  cache.set(registry, m);
  return m;
}
