/**
 * The fleet's truth: every rank's live version, as its worker read it from its adapter, against
 * the version the coordinator committed last. Workers converge by themselves after a commit, so a
 * rank behind is "converging" until it says it cannot (its flip or catch-up fails) or has stayed
 * behind for three leases: then the fleet is "diverged" and the rank is named.
 */
import type { CurrentRecord, FleetRank, FleetView, WorkerRecord } from '../types.js';

/** What the fleet view reads from the coordinator's state. */
export interface FleetInput {
  readonly workers: ReadonlyMap<string, WorkerRecord>;
  readonly current: CurrentRecord;
  /** Since when each rank has been behind (kept up to date here). */
  readonly behindSince: Map<string, number>;
  readonly opts: { readonly leaseS: number };
}

/** The fleet's world size: the one its live workers registered with (they must agree). */
export function fleetWorldSize(s: Pick<FleetInput, 'workers'>): number {
  let world = 0;
  for (const w of s.workers.values()) world = Math.max(world, w.world_size);
  return world;
}

export function fleetView(s: FleetInput, now = Date.now()): FleetView {
  const current = s.current.version;
  const world = fleetWorldSize(s);
  const byRank = new Map<number, WorkerRecord>();
  for (const w of s.workers.values()) byRank.set(w.rank, w);
  const ranks: FleetRank[] = [];
  for (let rank = 0; rank < world; rank++) {
    const w = byRank.get(rank);
    const live = w?.live_version ?? null;
    const behind = !w || live !== current;
    const key = String(rank);
    if (!behind) s.behindSince.delete(key);
    else if (!s.behindSince.has(key)) s.behindSince.set(key, now);
    ranks.push({
      rank,
      worker_id: w?.worker_id ?? null,
      host: w?.host ?? null,
      pid: w?.pid ?? null,
      live_version: live,
      sync_error: w?.sync_error ?? null,
      behind,
    });
  }
  for (const key of [...s.behindSince.keys()]) if (Number(key) >= world) s.behindSince.delete(key);
  const behind = ranks.filter((r) => r.behind);
  const base = { world_size: world, current_version: current, behind: behind.map((r) => r.rank), ranks };
  if (world === 0) {
    const what = current === null ? 'nothing committed' : `current version ${current}`;
    return { ...base, state: 'empty', summary: `empty: no live workers (${what})` };
  }
  if (behind.length === 0) {
    return {
      ...base,
      state: 'converged',
      summary: `converged: ${world} of ${world} live on ${current ?? 'nothing'}`,
    };
  }
  const describe = (r: FleetRank) =>
    r.worker_id === null
      ? `rank ${r.rank} has no worker`
      : `rank ${r.rank} on ${r.live_version ?? 'nothing'}`;
  const graceMs = 3 * s.opts.leaseS * 1000;
  const stuck = behind.filter(
    (r) => r.sync_error !== null || now - (s.behindSince.get(String(r.rank)) ?? now) >= graceMs,
  );
  if (stuck.length > 0) {
    const parts = stuck.map((r) => `${describe(r)}${r.sync_error ? ` (${r.sync_error})` : ''}`);
    return { ...base, state: 'diverged', summary: `diverged: ${parts.join('; ')}` };
  }
  return {
    ...base,
    state: 'converging',
    summary: `converging: ${behind.length} of ${world} behind (${behind.map(describe).join(', ')})`,
  };
}
