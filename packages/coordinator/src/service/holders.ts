/** Bucket holders of the update in progress: who a late joiner can copy a bucket from. */
import { CoordinatorError } from '@hotweights/core';
import type { JsonObject } from '@hotweights/manifest';
import { checkParams, ERROR_CODES } from '../protocol.js';
import type { StoredWorker } from '../types.js';
import { requireLeaseKey } from './lease-key.js';
import { type CoordinatorState, holderOf, refused } from './state.js';

/** The live worker holding `rank`, when the caller proves it is that worker; refuses anyone else. */
export function requireRankHolder(
  s: CoordinatorState,
  args: { rank: number; worker_id: string | null; lease_key: string | null },
  method: string,
  what: string,
): StoredWorker {
  const holder = holderOf(s, args.rank);
  if (!holder || holder.worker_id !== args.worker_id) {
    throw new CoordinatorError(
      ERROR_CODES.notHolder,
      `${method}: rank ${args.rank} is not held by ${args.worker_id ?? '(no worker id)'}; only the rank's live worker ${what}`,
    );
  }
  requireLeaseKey(holder, args.lease_key, method);
  return holder;
}

export async function reportHave(s: CoordinatorState, p: JsonObject): Promise<unknown> {
  const args = checkParams('report_have', (c) => ({
    version: c.string(p.version, 'version', { nonEmpty: true }),
    rank: c.count(p.rank, 'rank'),
    bucket_ids: c.array(p.bucket_ids, 'bucket_ids').map((b, i) => c.count(b, `bucket_ids[${i}]`)),
    worker_id: c.nullableString(p.worker_id ?? null, 'worker_id'),
    lease_key: c.nullableString(p.lease_key ?? null, 'lease_key'),
  }));
  // Late joiners copy from the ranks named here: only a rank's holder may say what it has.
  requireRankHolder(s, args, 'report_have', 'reports its buckets');
  const active = s.active();
  if (!active || active.version !== args.version) {
    throw refused(`report_have ${args.version}: not the update in progress`);
  }
  const known = new Set(s.activePlan?.buckets.map((b) => b.bucket_id) ?? []);
  const have = { ...(s.have.get(args.version) ?? {}) };
  for (const id of args.bucket_ids) {
    if (!known.has(id))
      throw new CoordinatorError(ERROR_CODES.badParams, `report_have: bucket ${id} is not in the plan`);
    const ranks = new Set(have[id] ?? []);
    ranks.add(args.rank);
    have[id] = [...ranks].sort((a, b) => a - b);
  }
  s.have.set(args.version, have);
  await s.backend.set(`have:${args.version}`, have);
  s.refreshGauges();
  return { buckets: args.bucket_ids.length };
}

export function whoHas(s: CoordinatorState, p: JsonObject): unknown {
  const args = checkParams('who_has', (c) => ({
    version: c.string(p.version, 'version', { nonEmpty: true }),
    bucket_ids:
      p.bucket_ids === undefined
        ? undefined
        : c.array(p.bucket_ids, 'bucket_ids').map((b, i) => c.count(b, `bucket_ids[${i}]`)),
  }));
  const have = s.have.get(args.version) ?? {};
  const live = new Set([...s.workers.values()].map((w) => w.rank));
  const holders: Record<string, number[]> = {};
  const ids = args.bucket_ids ?? Object.keys(have).map(Number);
  for (const id of ids) holders[id] = (have[id] ?? []).filter((r) => live.has(r));
  return { version: args.version, holders };
}
