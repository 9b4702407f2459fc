/** Prometheus metrics of the coordinator (served on :9100 by `coord-serve`). */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export class CoordinatorMetrics {
  readonly workers: Gauge;
  readonly precommitAcks: Gauge;
  readonly haveBuckets: Gauge;
  readonly ranksBehind: Gauge;
  readonly requiredRanks: Gauge;
  readonly updateBegunAt: Gauge;
  readonly handlesPosted: Counter;
  readonly handlesFetched: Counter;
  readonly handlesAcked: Counter;
  readonly handlesExpired: Counter;
  readonly handlesActive: Gauge;
  readonly rpcSeconds: Histogram<'method'>;
  readonly rpcErrors: Counter<'code'>;
  readonly updates: Counter<'result'>;

  constructor(registry: Registry) {
    const registers = [registry];
    this.workers = new Gauge({
      name: 'hotweights_coord_workers',
      help: 'Workers holding a live lease',
      registers,
    });
    this.precommitAcks = new Gauge({
      name: 'hotweights_coord_precommit_acks',
      help: 'Ranks that have precommitted the active update',
      registers,
    });
    this.ranksBehind = new Gauge({
      name: 'hotweights_coord_ranks_behind',
      help: 'Ranks of the fleet not live on the current version (no worker, or another version live)',
      registers,
    });
    // With precommit_acks these make an update's progress (acks / required) and its age
    // (time() - begun), which is what a "stuck update" alert needs.
    this.requiredRanks = new Gauge({
      name: 'hotweights_coord_required_ranks',
      help: 'Ranks whose precommit the active update needs (0 when no update is active)',
      registers,
    });
    this.updateBegunAt = new Gauge({
      name: 'hotweights_coord_update_begun_timestamp_seconds',
      help: 'Unix time at which the active update began (0 when no update is active)',
      registers,
    });
    this.haveBuckets = new Gauge({
      name: 'hotweights_coord_have_buckets',
      help: '(bucket, rank) pairs reported held for the active update',
      registers,
    });
    this.handlesPosted = new Counter({
      name: 'hotweights_handles_posted_total',
      help: 'Transfer handles posted',
      registers,
    });
    this.handlesFetched = new Counter({
      name: 'hotweights_handles_fetched_total',
      help: 'Transfer handles fetched',
      registers,
    });
    this.handlesAcked = new Counter({
      name: 'hotweights_handles_acked_total',
      help: 'Transfer handle acks',
      registers,
    });
    this.handlesExpired = new Counter({
      name: 'hotweights_handles_expired_total',
      help: 'Transfer handles removed by their TTL',
      registers,
    });
    this.handlesActive = new Gauge({
      name: 'hotweights_handles_active',
      help: 'Transfer handles currently held',
      registers,
    });
    this.rpcSeconds = new Histogram({
      name: 'hotweights_coord_rpc_seconds',
      help: 'Time to serve one RPC, by method',
      labelNames: ['method'],
      buckets: [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.25, 1],
      registers,
    });
    this.rpcErrors = new Counter({
      name: 'hotweights_coord_rpc_errors_total',
      help: 'RPCs answered with an error, by error code',
      labelNames: ['code'],
      registers,
    });
    this.updates = new Counter({
      name: 'hotweights_coord_updates_total',
      help: 'Updates finished, by result (committed, aborted)',
      labelNames: ['result'],
      registers,
    });
  }
}
