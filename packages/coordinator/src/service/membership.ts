/**
 * Workers and their leases: register, heartbeat, and the reaper that drops workers whose lease
 * ran out (aborting an update that can no longer finish without them).
 */
import { randomUUID } from 'node:crypto';
import { CoordinatorError } from '@hotweights/core';
import type { JsonObject } from '@hotweights/manifest';
import { checkParams, ERROR_CODES } from '../protocol.js';
import type { WorkerRecord } from '../types.js';
import type { CoordinatorState } from './state.js';
import { finishAbort } from './updates.js';

export async function register(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('register', (c) => ({
    rank: c.count(p.rank, 'rank'),
    world_size: c.count(p.world_size ?? 1, 'world_size', { min: 1 }),
    node_id: c.string(p.node_id ?? 'unknown', 'node_id', { nonEmpty: true }),
    host: c.string(p.host ?? 'unknown', 'host'),
    pid: p.pid === undefined || p.pid === null ? null : c.count(p.pid, 'pid'),
    live_version: c.nullableString(p.live_version, 'live_version'),
    worker_id: p.worker_id === undefined ? undefined : c.string(p.worker_id, 'worker_id', { nonEmpty: true }),
  }));
  if (args.rank >= args.world_size) {
    throw new CoordinatorError(
      ERROR_CODES.badParams,
      `register: params.rank ${args.rank} is not below world_size ${args.world_size}`,
    );
  }
  const now = Date.now();
  const worker_id = args.worker_id ?? randomUUID();
  const known = s.workers.has(worker_id);
  const w: WorkerRecord = {
    worker_id,
    rank: args.rank,
    world_size: args.world_size,
    node_id: args.node_id.slice(0, 256),
    host: args.host.slice(0, 256),
    pid: args.pid,
    registered_at: s.workers.get(worker_id)?.registered_at ?? now,
    last_seen: now,
    lease_expires_at: now + s.opts.leaseS * 1000,
    live_version: args.live_version,
  };
  s.workers.set(worker_id, w);
  await s.backend.set(`worker:${worker_id}`, w);
  s.refreshGauges();
  if (!known) await s.emit('worker_joined', { worker_id, rank: w.rank, node_id: w.node_id });
  return { worker_id, lease_s: s.opts.leaseS, heartbeat_s: s.opts.heartbeatS, seq: s.seq };
}

export async function heartbeat(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('heartbeat', (c) => ({
    worker_id: c.string(p.worker_id, 'worker_id', { nonEmpty: true }),
    live_version: p.live_version === undefined ? undefined : c.nullableString(p.live_version, 'live_version'),
  }));
  const w = s.workers.get(args.worker_id);
  if (!w) {
    throw new CoordinatorError(
      ERROR_CODES.unknownWorker,
      `heartbeat: worker ${args.worker_id} is not registered (lease expired?): register again`,
    );
  }
  const now = Date.now();
  const renewed: WorkerRecord = {
    ...w,
    last_seen: now,
    lease_expires_at: now + s.opts.leaseS * 1000,
    live_version: args.live_version === undefined ? w.live_version : args.live_version,
  };
  s.workers.set(w.worker_id, renewed);
  await s.backend.set(`worker:${w.worker_id}`, renewed);
  const active = s.active();
  return {
    lease_s: s.opts.leaseS,
    seq: s.seq,
    active: active ? { version: active.version, state: active.state } : null,
    current_version: s.current.version,
  };
}

export function listWorkers(s: CoordinatorState): unknown {
  return { workers: [...s.workers.values()] };
}

/**
 * Drops workers whose lease ran out. A lost worker whose rank an update in progress needs aborts
 * that update: live weights everywhere stay as they are.
 */
export async function expireLeases(s: CoordinatorState, now: number): Promise<void> {
  const lost: WorkerRecord[] = [];
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
    const covered = [...s.workers.values()].some((o) => o.rank === w.rank);
    if (covered) continue;
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
