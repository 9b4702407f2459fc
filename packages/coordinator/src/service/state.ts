/**
 * What the coordinator holds in memory (a write-through cache of its backend) and the few steps
 * every concern shares: finding the update in progress, storing an update, publishing an event,
 * refreshing the gauges. Handlers (one module per concern) read and change it; the service runs
 * them one at a time.
 */
import { CoordinatorError, type Plan } from '@hotweights/core';
import type { StateBackend } from '../backends/backend.js';
import type { CoordinatorMetrics } from '../metrics.js';
import { type CoordEvent, ERROR_CODES, type EventName } from '../protocol.js';
import {
  ACTIVE_STATES,
  type CurrentRecord,
  type HandleRecord,
  type StoredWorker,
  type UpdateRecord,
  type UpdateView,
} from '../types.js';
import { fleetView } from './fleet.js';

export interface CoordinatorServiceOptions {
  readonly backend: StateBackend;
  readonly token?: string | undefined;
  readonly leaseS: number;
  readonly heartbeatS: number;
  readonly handleTtlS: number;
  readonly metrics?: CoordinatorMetrics | undefined;
  /** Test hook (HOTWEIGHTS_TEST_PRECOMMIT_DELAY_MS): ms each precommit reply is held after the vote is stored. */
  readonly precommitReplyDelayMs?: number | undefined;
  /** Receives every event after its state change is stored. */
  readonly publish?: (event: CoordEvent) => void;
}

export function refused(message: string): CoordinatorError {
  return new CoordinatorError(ERROR_CODES.refused, message);
}

export class CoordinatorState {
  readonly opts: CoordinatorServiceOptions;
  readonly backend: StateBackend;
  readonly workers = new Map<string, StoredWorker>();
  readonly updates = new Map<string, UpdateRecord>();
  readonly handles = new Map<string, HandleRecord>();
  readonly have = new Map<string, Record<string, number[]>>();
  /** Rendezvous rounds of the update in progress (`version@begun_at|round`): rank -> value. */
  readonly rendezvous = new Map<string, Map<number, string>>();
  current: CurrentRecord = { version: null, manifest_digest: null, committed_at: null };
  seq = 0;
  activePlan: Plan | undefined;
  /** JSON of the active plan and manifest, made on first request. */
  activeJson: { plan: string; manifest: string | undefined } | undefined;
  /** When each required rank of the active update was first seen without a live worker. */
  readonly missingSince = new Map<string, number>();
  readonly openedAt = Date.now();
  /** Since when each rank (by number) has not been live on the current version. */
  readonly behindSince = new Map<string, number>();
  publish: (event: CoordEvent) => void;

  constructor(opts: CoordinatorServiceOptions) {
    this.opts = opts;
    this.backend = opts.backend;
    this.publish = opts.publish ?? (() => {});
  }

  get metrics(): CoordinatorMetrics | undefined {
    return this.opts.metrics;
  }

  active(): UpdateRecord | undefined {
    for (const u of this.updates.values()) if (ACTIVE_STATES.includes(u.state)) return u;
    return undefined;
  }

  view(u: UpdateRecord): UpdateView {
    const done = new Set(Object.keys(u.precommits).map(Number));
    return {
      ...u,
      precommitted_ranks: u.required_ranks.filter((r) => done.has(r)),
      missing_ranks: u.required_ranks.filter((r) => !done.has(r)),
    };
  }

  async emit(event: EventName, body: Record<string, unknown>): Promise<void> {
    this.seq += 1;
    await this.backend.set('seq', this.seq);
    this.publish({ ...body, event, seq: this.seq, at: Date.now() });
  }

  async putUpdate(u: UpdateRecord): Promise<void> {
    this.updates.set(u.version, u);
    await this.backend.set(`update:${u.version}`, u);
    this.refreshGauges();
  }

  refreshGauges(): void {
    const m = this.opts.metrics;
    if (!m) return;
    m.workers.set(this.workers.size);
    const active = this.active();
    m.precommitAcks.set(active ? Object.keys(active.precommits).length : 0);
    m.requiredRanks.set(active ? active.required_ranks.length : 0);
    m.updateBegunAt.set(active?.begun_at ? active.begun_at / 1000 : 0);
    const have = active ? this.have.get(active.version) : undefined;
    m.haveBuckets.set(have ? Object.values(have).reduce((n, ranks) => n + ranks.length, 0) : 0);
    m.handlesActive.set(this.handles.size);
    m.ranksBehind.set(fleetView(this).behind.length);
  }
}

/** The live worker holding `rank`, if any. */
export function holderOf(s: CoordinatorState, rank: number): StoredWorker | undefined {
  for (const w of s.workers.values()) if (w.rank === rank) return w;
  return undefined;
}
