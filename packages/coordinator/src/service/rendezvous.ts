/**
 * The rendezvous of an update, for fleets of separately started workers: each rank posts a value
 * under a round of the update in progress (its node id, its UCX worker address, …) and reads back
 * every rank's value once all ranks of the plan's world have posted. Every call posts and reads, so
 * a worker polls with the same call, and a restarted coordinator (the rounds live only in memory:
 * they matter only while the update runs) is filled again by the next polls.
 */
import { CoordinatorError } from '@hotweights/core';
import type { JsonObject } from '@hotweights/manifest';
import { checkParams, ERROR_CODES } from '../protocol.js';
import { requireRankHolder } from './holders.js';
import { type CoordinatorState, refused } from './state.js';

/** A UCX worker address is a few hundred bytes; anything far larger is not one of ours. */
const MAX_VALUE_CHARS = 64 * 1024;
const MAX_ROUND_CHARS = 64;

export function rendezvous(s: CoordinatorState, p: JsonObject): unknown {
  const args = checkParams('rendezvous', (c) => ({
    version: c.string(p.version, 'version', { nonEmpty: true }),
    begun_at: c.count(p.begun_at, 'begun_at'),
    round: c.string(p.round, 'round', { nonEmpty: true }),
    rank: c.count(p.rank, 'rank'),
    value: c.string(p.value, 'value'),
    worker_id: c.nullableString(p.worker_id ?? null, 'worker_id'),
    lease_key: c.nullableString(p.lease_key ?? null, 'lease_key'),
  }));
  if (args.round.length > MAX_ROUND_CHARS || args.value.length > MAX_VALUE_CHARS) {
    throw new CoordinatorError(
      ERROR_CODES.tooLarge,
      `rendezvous: round (<= ${MAX_ROUND_CHARS} chars) or value (<= ${MAX_VALUE_CHARS} chars) too long`,
    );
  }
  // Peers connect to what is posted here: only a rank's live worker may post for it.
  const holder = requireRankHolder(s, args, 'rendezvous', 'posts for it');
  const active = s.active();
  const plan = s.activePlan;
  if (!active || !plan || active.version !== args.version || active.begun_at !== args.begun_at) {
    throw refused(`rendezvous ${args.version}: not the update in progress (it ended or was begun again)`);
  }
  // A plan made for any world size meets the world its workers registered with.
  const world = plan.world_size ?? holder.world_size;
  if (args.rank >= world) {
    throw new CoordinatorError(
      ERROR_CODES.badParams,
      `rendezvous: rank ${args.rank} is not in the plan's world of ${world}`,
    );
  }
  const update = `${args.version}@${args.begun_at}`;
  // Rounds of updates that are over are dropped here: at most one update runs at a time.
  for (const key of s.rendezvous.keys()) if (!key.startsWith(`${update}|`)) s.rendezvous.delete(key);
  const key = `${update}|${args.round}`;
  const posted = s.rendezvous.get(key) ?? new Map<number, string>();
  posted.set(args.rank, args.value);
  s.rendezvous.set(key, posted);
  const missing: number[] = [];
  for (let r = 0; r < world; r++) if (!posted.has(r)) missing.push(r);
  const values = missing.length ? null : Array.from({ length: world }, (_, r) => posted.get(r));
  return { round: args.round, values, missing };
}
