/**
 * A bucket's consumer checks: consumer set present, ranks in range and listed once; with TP
 * groups, consumers a superset of the groups of its items and none outside every group. Items are
 * seen through ItemShards, so a bucket made of columns is checked without building its items.
 */
import type { PlanBucket } from '@hotweights/core';
import type { TpGroups } from './consumers.js';
import type { Findings } from './findings.js';

/** What the TP checks read of a bucket's items. */
export interface ItemShards {
  readonly length: number;
  isFile(k: number): boolean;
  shardRank(k: number): number;
  /** For messages only. */
  key(k: number): string;
}

export interface ConsumerCheckOptions {
  readonly requireConsumers?: boolean;
  readonly tpGroups?: TpGroups;
  readonly enforceTpSuperset?: boolean;
}

export function checkConsumers(
  f: Findings,
  b: Pick<PlanBucket, 'bucket_id' | 'consumer_ranks'>,
  items: ItemShards,
  worldSize: number | null,
  options: ConsumerCheckOptions,
  allGroupRanks: Set<number> | null,
): void {
  const id = b.bucket_id;
  const ranks = b.consumer_ranks;
  if (ranks.length === 0)
    f.add(options.requireConsumers === true, {
      check: 'consumers-missing',
      bucket_id: id,
      message: `bucket ${id} has no consumer ranks`,
    });
  const seen = new Set<number>();
  for (const r of ranks) {
    if (seen.has(r))
      f.add(true, {
        check: 'consumers-duplicate',
        bucket_id: id,
        message: `bucket ${id} lists rank ${r} twice`,
      });
    seen.add(r);
    if (worldSize !== null && r >= worldSize)
      f.add(true, {
        check: 'rank-out-of-range',
        bucket_id: id,
        message: `bucket ${id}: consumer rank ${r} is outside 0..${worldSize - 1}`,
      });
  }
  const groups = options.tpGroups;
  if (!groups || !allGroupRanks) return;
  const enforce = options.enforceTpSuperset === true;
  const needed = new Set<number>();
  // Items of one shard rank need the same group: look each shard rank up once.
  const done = new Set<number>();
  for (let k = 0; k < items.length; k++) {
    if (items.isFile(k)) continue;
    const shard = items.shardRank(k);
    const g = groups.get(shard);
    if (!g) {
      f.add(enforce, {
        check: 'tp-no-group',
        bucket_id: id,
        message: `bucket ${id}: item ${items.key(k)} has shard rank ${shard}, which no TP group covers`,
      });
      continue;
    }
    if (done.has(shard)) continue;
    done.add(shard);
    for (const r of g) needed.add(r);
  }
  const missing = [...needed].filter((r) => !seen.has(r)).sort((x, y) => x - y);
  if (missing.length)
    f.add(enforce, {
      check: 'tp-superset',
      bucket_id: id,
      message: `bucket ${id}: consumers [${ranks.join(', ')}] miss TP group ranks [${missing.join(', ')}]`,
    });
  const outside = ranks.filter((r) => !allGroupRanks.has(r));
  if (outside.length)
    f.add(enforce, {
      check: 'tp-outside-groups',
      bucket_id: id,
      message: `bucket ${id}: consumer ranks [${outside.join(', ')}] are in no TP group`,
    });
}
