/**
 * Plan and TP-group verification: structured reports of problems (which make verify-plan exit 1
 * and `plan --strict` fail) and warnings (printed, not fatal).
 *
 * Plan checks: digest, a known hash algorithm, item offsets aligned and inside their bucket, no overlapping items, bucket
 * size = end of its last item and <= bucket_bytes, total_bytes = sum of items, paths inside the
 * root, unique keys, complete split parts; consumer sets present, in range and without duplicates;
 * with TP groups, each bucket's consumers a superset of its items' groups and no consumer outside
 * every group.
 */

import { PLAN_VERSION_PATCHES, type Plan, type PlanItem } from '@hotweights/core';
import { isConfinedRelativePath, isHashAlgorithm, unknownHashAlgorithmMessage } from '@hotweights/manifest';
import { checkConsumers, type ItemShards } from './consumer-checks.js';
import type { TpGroups } from './consumers.js';
import { type Finding, Findings, type VerifyReport } from './findings.js';
import { planDigest } from './plan-text.js';
import { checkItemColumns, columnSources } from './verify-columns.js';

export type { Finding, VerifyReport };

export interface VerifyPlanOptions {
  /** Overrides plan.world_size for range checks. */
  readonly worldSize?: number | null;
  /** An empty consumer set is a problem (otherwise a warning). */
  readonly requireConsumers?: boolean;
  readonly tpGroups?: TpGroups;
  /** TP superset and ranks-outside-groups findings are problems (otherwise warnings). */
  readonly enforceTpSuperset?: boolean;
  /** Skip the digest and key-uniqueness checks (a plan just built from a validated manifest). */
  readonly trusted?: boolean;
}

function checkParts(f: Findings, parts: Map<string, PlanItem[]>): void {
  for (const [key, list] of parts) {
    list.sort((a, b) => (a.part?.index ?? 0) - (b.part?.index ?? 0));
    const first = list[0] as PlanItem;
    const count = first.part?.count ?? 0;
    const base = first.file_offset - (first.part?.tensor_offset ?? 0);
    let offset = 0;
    let ok = list.length === count;
    for (const [i, it] of list.entries()) {
      const p = it.part;
      if (
        !p ||
        p.index !== i ||
        p.count !== count ||
        p.tensor_offset !== offset ||
        it.hash !== first.hash ||
        it.file_offset !== base + offset ||
        p.tensor_nbytes !== first.part?.tensor_nbytes
      )
        ok = false;
      offset += it.nbytes;
    }
    if (offset !== first.part?.tensor_nbytes) ok = false;
    if (!ok)
      f.add(true, {
        check: 'parts',
        message: `split tensor ${key}: parts must be indexes 0..count-1 once each, contiguous, with one hash, adding up to tensor_nbytes`,
      });
  }
}

/** The item checks of verifyPlan on PlanItem objects; returns the sum of item sizes. */
function checkItemObjects(
  f: Findings,
  plan: Plan,
  worldSize: number | null,
  options: VerifyPlanOptions,
  allGroupRanks: Set<number> | null,
): number {
  const keys = new Set<string>();
  const parts = new Map<string, PlanItem[]>();
  const removed = new Set(plan.removed);
  let total = 0;
  for (const b of plan.buckets) {
    const id = b.bucket_id;
    if (b.size > plan.bucket_bytes)
      f.add(true, {
        check: 'bucket-size',
        bucket_id: id,
        message: `bucket ${id} is ${b.size} bytes, over bucket_bytes ${plan.bucket_bytes}`,
      });
    const items = [...b.items].sort((x, y) => x.offset - y.offset || x.nbytes - y.nbytes);
    let end = 0;
    let maxEnd = 0;
    for (const it of items) {
      total += it.nbytes;
      if (it.offset % plan.alignment !== 0)
        f.add(true, {
          check: 'alignment',
          bucket_id: id,
          message: `bucket ${id}: item ${it.key} at offset ${it.offset} is not aligned to ${plan.alignment}`,
        });
      if (it.offset < end)
        f.add(true, {
          check: 'overlap',
          bucket_id: id,
          message: `bucket ${id}: item ${it.key} at offset ${it.offset} overlaps the previous item (ends at ${end})`,
        });
      if (it.offset + it.nbytes > b.size)
        f.add(true, {
          check: 'item-outside-bucket',
          bucket_id: id,
          message: `bucket ${id}: item ${it.key} ends at ${it.offset + it.nbytes}, past the bucket size ${b.size}`,
        });
      end = Math.max(end, it.offset + it.nbytes);
      maxEnd = Math.max(maxEnd, it.offset + it.nbytes);
      if (!isConfinedRelativePath(it.uri))
        f.add(true, {
          check: 'path',
          bucket_id: id,
          message: `bucket ${id}: item ${it.key} has uri ${JSON.stringify(it.uri)} outside the checkpoint root`,
        });
      if (removed.has(it.key))
        f.add(true, {
          check: 'removed',
          bucket_id: id,
          message: `item ${it.key} is both planned and listed as removed`,
        });
      if (it.patch) checkPatch(f, plan, id, it);
      if (it.part) {
        let list = parts.get(it.key);
        if (!list) {
          list = [];
          parts.set(it.key, list);
        }
        list.push(it);
      } else if (!options.trusted) {
        if (keys.has(it.key))
          f.add(true, { check: 'duplicate-key', bucket_id: id, message: `item ${it.key} is planned twice` });
        keys.add(it.key);
      }
    }
    if (b.items.length > 0 && maxEnd !== b.size)
      f.add(true, {
        check: 'bucket-size',
        bucket_id: id,
        message: `bucket ${id}: size ${b.size} is not the end of its last item (${maxEnd})`,
      });
    checkConsumers(f, b, itemShards(b.items), worldSize, options, allGroupRanks);
  }
  checkParts(f, parts);
  for (const key of parts.keys()) {
    if (keys.has(key))
      f.add(true, { check: 'duplicate-key', message: `item ${key} is planned both whole and split` });
  }
  return total;
}

/**
 * A patch item: only in a plan_version 2 plan that names its patch file, whole (never split),
 * with hashes of the plan's algorithm, inside the patch file, and smaller than the tensor it
 * rebuilds (else the planner would have moved the tensor).
 */
function checkPatch(f: Findings, plan: Plan, id: number, it: PlanItem): void {
  const p = it.patch as NonNullable<PlanItem['patch']>;
  const bad = (why: string) =>
    f.add(true, { check: 'patch', bucket_id: id, message: `bucket ${id}: patch item ${it.key}: ${why}` });
  if (plan.plan_version !== PLAN_VERSION_PATCHES) bad(`patches need plan_version ${PLAN_VERSION_PATCHES}`);
  if (!plan.patches) bad('the plan names no patch file (patches.path)');
  else if (p.file_offset + it.nbytes > plan.patches.bytes)
    bad(
      `its bytes ${p.file_offset}..${p.file_offset + it.nbytes} run past the patch file (${plan.patches.bytes} bytes)`,
    );
  if (it.part) bad('a patch is never split into parts');
  if (it.kind !== 'tensor') bad(`only tensors are patched (kind ${it.kind})`);
  if (it.nbytes >= p.tensor_nbytes) bad(`${it.nbytes} patch bytes for a ${p.tensor_nbytes}-byte tensor`);
  for (const h of [p.base_hash, p.hash])
    if (!h.startsWith(`${plan.hash_algo}:`)) bad(`hash ${h} is not a ${plan.hash_algo} hash`);
}

function itemShards(items: readonly PlanItem[]): ItemShards {
  return {
    length: items.length,
    isFile: (k) => (items[k] as PlanItem).kind === 'file',
    shardRank: (k) => (items[k] as PlanItem).shard_rank,
    key: (k) => (items[k] as PlanItem).key,
  };
}

export function verifyPlan(plan: Plan, options: VerifyPlanOptions = {}): VerifyReport {
  const f = new Findings();
  if (!options.trusted) {
    const digest = planDigest(plan);
    if (digest !== plan.digest)
      f.add(true, {
        check: 'digest',
        message: `digest ${plan.digest} does not match the content (${digest}): the plan was modified`,
      });
  }
  // Landed items are checked with this algorithm: one we cannot compute verifies nothing.
  if (!isHashAlgorithm(plan.hash_algo))
    f.add(true, { check: 'hash-algo', message: `hash_algo: ${unknownHashAlgorithmMessage(plan.hash_algo)}` });
  const worldSize = options.worldSize ?? plan.world_size;
  if (worldSize !== null && plan.source.rank >= worldSize)
    f.add(true, {
      check: 'rank-out-of-range',
      message: `source rank ${plan.source.rank} is outside 0..${worldSize - 1}`,
    });
  const allGroupRanks = options.tpGroups ? new Set([...options.tpGroups.values()].flat()) : null;
  // A plan createPlan made is checked on its columns: its items are never built for this.
  const sources = columnSources(plan);
  const total = sources
    ? checkItemColumns(f, plan, sources, worldSize, options, allGroupRanks)
    : checkItemObjects(f, plan, worldSize, options, allGroupRanks);
  if (total !== plan.total_bytes)
    f.add(true, {
      check: 'total-bytes',
      message: `total_bytes ${plan.total_bytes} is not the sum of item sizes (${total})`,
    });
  return f.report();
}

/** Checks TP groups against a world size. */
export function verifyTpGroups(groups: TpGroups, worldSize: number): VerifyReport {
  const f = new Findings();
  const owner = new Map<number, number>();
  if (groups.size === 0) f.add(true, { check: 'tp-empty', message: 'no TP groups are defined' });
  for (const [g, ranks] of groups) {
    if (ranks.length === 0) f.add(true, { check: 'tp-empty', message: `group ${g} has no ranks` });
    const inGroup = new Set<number>();
    for (const r of ranks) {
      if (inGroup.has(r)) f.add(true, { check: 'tp-duplicate', message: `group ${g} lists rank ${r} twice` });
      inGroup.add(r);
      if (r >= worldSize)
        f.add(true, {
          check: 'rank-out-of-range',
          message: `group ${g}: rank ${r} is outside 0..${worldSize - 1}`,
        });
      const other = owner.get(r);
      if (other !== undefined && other !== g)
        f.add(true, { check: 'tp-overlap', message: `rank ${r} is in both group ${other} and group ${g}` });
      else owner.set(r, g);
    }
  }
  const outside: number[] = [];
  for (let r = 0; r < worldSize; r++) if (!owner.has(r)) outside.push(r);
  if (outside.length)
    f.add(true, { check: 'tp-outside-groups', message: `ranks [${outside.join(', ')}] are in no TP group` });
  const ids = [...groups.keys()];
  if (ids.some((g, i) => g !== i))
    f.add(false, {
      check: 'tp-group-ids',
      message: `group ids [${ids.join(', ')}] are not 0..${ids.length - 1}; shard ranks map to group ids directly`,
    });
  return f.report();
}
