/** The coordinator's view for `status`: current version, the update in progress, workers. */

import type { TokenGuard } from '../auth.js';
import type { CoordinatorStatus } from '../types.js';
import { fleetView } from './fleet.js';
import { publicWorker } from './lease-key.js';
import type { CoordinatorState } from './state.js';

const RECENT_UPDATES = 20;

export function statusOf(s: CoordinatorState, guard: TokenGuard): CoordinatorStatus {
  const active = s.active();
  const updates = [...s.updates.values()]
    .sort((a, b) => (b.begun_at ?? b.submitted_at) - (a.begun_at ?? a.submitted_at))
    .slice(0, RECENT_UPDATES)
    .map((u) => s.view(u));
  return {
    now: Date.now(),
    seq: s.seq,
    backend: s.backend.kind,
    auth: guard.enabled,
    lease_s: s.opts.leaseS,
    heartbeat_s: s.opts.heartbeatS,
    current_version: s.current.version,
    active: active ? s.view(active) : null,
    updates,
    workers: [...s.workers.values()].sort((a, b) => a.rank - b.rank).map(publicWorker),
    handles_active: s.handles.size,
    fleet: fleetView(s),
  };
}
