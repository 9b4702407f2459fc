/**
 * Node-scoped handles to staged buckets, through the coordinator: a rank that staged a bucket
 * posts where its segment lives; a rank that joins after the broadcasts finds one on its node,
 * copies from it, and acknowledges it.
 */
import { access } from 'node:fs/promises';
import type { StagingAgent } from '@hotweights/core';
import { isSegmentHandle, type SegmentHandle } from '@hotweights/transport-local';
import type { CoordinatorClient } from './client.js';

export interface HandleScope {
  readonly client: CoordinatorClient;
  readonly nodeId: string;
  readonly version: string;
  readonly begunAt: number | null;
}

export function handleKey(s: HandleScope, bucketId: number, rank: number): string {
  return `${s.version}@${s.begunAt}/b${bucketId}/r${rank}`;
}

/** Lets ranks that join late on this node copy our staged buckets instead of re-reading the source. */
export async function postHandles(
  s: HandleScope,
  staging: StagingAgent,
  rank: number,
  bucketIds: readonly number[],
): Promise<void> {
  await Promise.all(
    bucketIds.map(async (id) => {
      const seg = staging.get(s.version, id)?.segment;
      if (!seg) return;
      const handle: SegmentHandle = { ...seg, rank };
      await s.client.postHandle({ nodeId: s.nodeId, key: handleKey(s, id, rank), handle }).catch(() => {});
    }),
  );
}

/**
 * For every bucket in `bucketIds`, a readable segment of another live holder on this node (from
 * who_has and the node-scoped handles), or undefined if any bucket has none.
 */
export async function findHandles(
  s: HandleScope,
  rank: number,
  bucketIds: readonly number[],
  holders: Readonly<Record<string, number[]>>,
): Promise<Map<number, SegmentHandle> | undefined> {
  if (bucketIds.length === 0) return undefined;
  const found = new Map<number, SegmentHandle>();
  for (const id of bucketIds) {
    for (const holder of holders[id] ?? []) {
      if (holder === rank) continue; // our own predecessor: its segments died with it
      const r = await s.client.getHandle(s.nodeId, handleKey(s, id, holder)).catch(() => null);
      if (r && isSegmentHandle(r.handle) && (await readable(r.handle.path))) {
        found.set(id, r.handle);
        break;
      }
    }
    if (!found.has(id)) return undefined;
  }
  return found;
}

/** Tells the coordinator we are done with these handles (their holders may then drop them). */
export async function ackHandles(
  s: HandleScope,
  handles: ReadonlyMap<number, SegmentHandle>,
  consumer: string,
): Promise<void> {
  await Promise.all(
    [...handles].map(([id, h]) =>
      s.client.ackHandle(s.nodeId, handleKey(s, id, h.rank), consumer).catch(() => {}),
    ),
  );
}

function readable(path: string): Promise<boolean> {
  return access(path).then(
    () => true,
    () => false,
  );
}
