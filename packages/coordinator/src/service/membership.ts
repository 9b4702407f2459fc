/**
 * Workers and their leases. A rank is held by one live worker at a time: a second claimant is
 * refused with the holder named, except a restarted worker on the holder's host that checked the
 * holder's process is gone and proves it with the holder's lease key (`take_over`). Every call
 * acting as a worker carries the worker's lease key (see lease-key.ts). Ranks and world sizes are checked against the fleet.
 * The reaper drops workers whose lease ran out, aborting an update that can no longer finish.
 */
import { randomUUID } from 'node:crypto';
import { CoordinatorError } from '@hotweights/core';
import type { JsonObject } from '@hotweights/manifest';
import { checkParams, ERROR_CODES } from '../protocol.js';
import type { StoredWorker } from '../types.js';
import { fleetWorldSize } from './fleet.js';
import { issueLeaseKey, leaseKeyMatches, publicWorker, requireLeaseKey } from './lease-key.js';
import { type CoordinatorState, holderOf, refused } from './state.js';
import { finishAbort } from './updates.js';

/** The largest world a coordinator accepts (ranks are processes; far above any real fleet). */
export const MAX_WORLD_SIZE = 65_536;

function describeHolder(w: StoredWorker, now: number): string {
  const left = Math.max(0, (w.lease_expires_at - now) / 1000).toFixed(1);
  return `worker ${w.worker_id} on host ${w.host} (pid ${w.pid ?? '?'}, node ${w.node_id}, lease ${left} s left)`;
}

export async function register(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('register', (c) => ({
    rank: c.count(p.rank, 'rank'),
    world_size: c.count(p.world_size ?? 1, 'world_size', { min: 1 }),
    node_id: c.string(p.node_id ?? 'unknown', 'node_id', { nonEmpty: true }),
    host: c.string(p.host ?? 'unknown', 'host'),
    pid: p.pid === undefined || p.pid === null ? null : c.count(p.pid, 'pid'),
    live_version: c.nullableString(p.live_version, 'live_version'),
    sync_error: p.sync_error === undefined ? null : c.nullableString(p.sync_error, 'sync_error'),
    worker_id: p.worker_id === undefined ? undefined : c.string(p.worker_id, 'worker_id', { nonEmpty: true }),
    take_over: p.take_over === undefined ? undefined : c.string(p.take_over, 'take_over', { nonEmpty: true }),
    take_over_key: c.nullableString(p.take_over_key ?? null, 'take_over_key'),
    lease_key: c.nullableString(p.lease_key ?? null, 'lease_key'),
  }));
  if (args.world_size > MAX_WORLD_SIZE) {
    throw new CoordinatorError(
      ERROR_CODES.badParams,
      `register: params.world_size ${args.world_size} is over the limit of ${MAX_WORLD_SIZE} ranks`,
    );
  }
  if (args.rank >= args.world_size) {
    throw new CoordinatorError(
      ERROR_CODES.badParams,
      `register: params.rank ${args.rank} is not below world_size ${args.world_size}`,
    );
  }
  const now = Date.now();
  const worker_id = args.worker_id ?? randomUUID();
  // Ids are public (status lists them): replacing a known worker's record needs its key. An id
  // the coordinator does not know (e.g. it restarted on memory) registers afresh.
  const previous = s.workers.get(worker_id);
  if (previous) requireLeaseKey(previous, args.lease_key, `register as ${worker_id}`);
  const others = [...s.workers.values()].filter((w) => w.worker_id !== worker_id);
  const fleetWorld = fleetWorldSize({ workers: new Map(others.map((w) => [w.worker_id, w])) });
  if (fleetWorld !== 0 && fleetWorld !== args.world_size) {
    throw refused(
      `register: world_size ${args.world_size} does not match the fleet's (${fleetWorld}, from its live workers); start every worker with the same WORLD_SIZE`,
    );
  }
  const planWorld = s.activePlan?.world_size ?? null;
  if (planWorld !== null && planWorld !== args.world_size) {
    throw refused(
      `register: world_size ${args.world_size} does not match update ${s.activePlan?.version}'s plan (made for ${planWorld}); re-plan with --world-size ${args.world_size} or start the worker with WORLD_SIZE=${planWorld}`,
    );
  }
  const holder = others.find((w) => w.rank === args.rank);
  if (holder) {
    // A holder whose lease ran out (the reaper has not passed yet) is gone; a restarted worker
    // may replace its dead predecessor at once, rather than wait a lease.
    const replaces =
      holder.lease_expires_at <= now ||
      (args.take_over === holder.worker_id &&
        leaseKeyMatches(holder, args.take_over_key) &&
        holder.host === args.host &&
        holder.host !== 'unknown');
    if (!replaces) {
      throw new CoordinatorError(
        ERROR_CODES.rankHeld,
        `register: rank ${args.rank} is held by ${describeHolder(holder, now)}; stop that worker or give this one another rank`,
        { details: { holder: publicWorker(holder) } },
      );
    }
    s.workers.delete(holder.worker_id);
    await s.backend.delete(`worker:${holder.worker_id}`);
    await s.emit('worker_lost', {
      worker_id: holder.worker_id,
      rank: holder.rank,
      node_id: holder.node_id,
      replaced_by: worker_id,
    });
  }
  const lease = issueLeaseKey();
  const w: StoredWorker = {
    worker_id,
    rank: args.rank,
    world_size: args.world_size,
    node_id: args.node_id.slice(0, 256),
    host: args.host.slice(0, 256),
    pid: args.pid,
    registered_at: previous?.registered_at ?? now,
    last_seen: now,
    lease_expires_at: now + s.opts.leaseS * 1000,
    live_version: args.live_version,
    sync_error: args.sync_error?.slice(0, 500) ?? null,
    key_hash: lease.hash,
  };
  s.workers.set(worker_id, w);
  await s.backend.set(`worker:${worker_id}`, w);
  s.refreshGauges();
  if (!previous) await s.emit('worker_joined', { worker_id, rank: w.rank, node_id: w.node_id });
  return {
    worker_id,
    // The only place the key is ever sent: the worker keeps it for every later call.
    lease_key: lease.key,
    lease_s: s.opts.leaseS,
    heartbeat_s: s.opts.heartbeatS,
    seq: s.seq,
    current_version: s.current.version,
  };
}

export async function heartbeat(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('heartbeat', (c) => ({
    worker_id: c.string(p.worker_id, 'worker_id', { nonEmpty: true }),
    live_version: p.live_version === undefined ? undefined : c.nullableString(p.live_version, 'live_version'),
    sync_error: p.sync_error === undefined ? undefined : c.nullableString(p.sync_error, 'sync_error'),
    lease_key: c.nullableString(p.lease_key ?? null, 'lease_key'),
  }));
  const w = s.workers.get(args.worker_id);
  if (!w) {
    throw new CoordinatorError(
      ERROR_CODES.unknownWorker,
      `heartbeat: worker ${args.worker_id} is not registered (lease expired?): register again`,
    );
  }
  requireLeaseKey(w, args.lease_key, 'heartbeat');
  const now = Date.now();
  const renewed: StoredWorker = {
    ...w,
    last_seen: now,
    lease_expires_at: now + s.opts.leaseS * 1000,
    live_version: args.live_version === undefined ? w.live_version : args.live_version,
    sync_error:
      args.sync_error === undefined ? (w.sync_error ?? null) : (args.sync_error?.slice(0, 500) ?? null),
  };
  s.workers.set(w.worker_id, renewed);
  await s.backend.set(`worker:${w.worker_id}`, renewed);
  s.refreshGauges();
  const active = s.active();
  return {
    lease_s: s.opts.leaseS,
    seq: s.seq,
    active: active ? { version: active.version, state: active.state } : null,
    current_version: s.current.version,
  };
}

export function listWorkers(s: CoordinatorState): unknown {
  return { workers: [...s.workers.values()].map(publicWorker) };
}

/**
 * Drops workers whose lease ran out. A lost worker whose rank an update in progress needs aborts
 * that update: live weights everywhere stay as they are.
 */
export async function expireLeases(s: CoordinatorState, now: number): Promise<void> {
  const lost: StoredWorker[] = [];
  for (const w of [...s.workers.values()]) {
    if (w.lease_expires_at > now) continue;
    s.workers.delete(w.worker_id);
    await s.backend.delete(`worker:${w.worker_id}`);
    lost.push(w);
  }
  for (const w of lost) {
    await s.emit('worker_lost', { worker_id: w.worker_id, rank: w.rank, node_id: w.node_id });
    const active = s.active();
    if (!active?.required_ranks.includes(w.rank)) continue;
    // A rank that already voted yes stays counted: its prepared version survives the worker.
    if (active.precommits[String(w.rank)]) continue;
    if (holderOf(s, w.rank)) continue;
    await finishAbort(
      s,
      active,
      `worker ${w.worker_id} (rank ${w.rank}, node ${w.node_id}) lost its lease during the update`,
    );
  }
  await abortIfRankMissing(s, now);
}

/**
 * A required rank with no live worker (never joined, or gone before the update began) may still
 * arrive late; after three leases without one the update cannot finish, so it aborts.
 */
async function abortIfRankMissing(s: CoordinatorState, now: number): Promise<void> {
  const active = s.active();
  if (!active) {
    s.missingSince.clear();
    return;
  }
  const live = new Set([...s.workers.values()].map((w) => w.rank));
  const since = active.begun_at ?? now;
  for (const rank of active.required_ranks) {
    const key = `${active.version}:${rank}`;
    if (live.has(rank) || active.precommits[String(rank)]) {
      s.missingSince.delete(key);
      continue;
    }
    const first = s.missingSince.get(key) ?? Math.max(since, s.openedAt);
    s.missingSince.set(key, first);
    const graceMs = 3 * s.opts.leaseS * 1000;
    if (now - first >= graceMs) {
      s.missingSince.clear();
      await finishAbort(
        s,
        active,
        `rank ${rank} has had no live worker for ${(graceMs / 1000).toFixed(1)} s during the update (never joined, or lost its lease)`,
      );
      return;
    }
  }
}
