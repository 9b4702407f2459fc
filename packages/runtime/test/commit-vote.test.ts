/**
 * The commit vote between real local-transport ranks (three in this process, meeting in a
 * rendezvous folder): everyone learns every rank's vote, a no from any rank means nobody commits,
 * and a rank that never votes fails the vote with an error naming it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { CommitError, loadConfig, type Plan, type Transport } from '@hotweights/core';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, describe, expect, it } from 'vitest';
import { voteBucketId, voteOnCommit } from '../src/commit-vote.js';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});
const config = loadConfig({ HOTWEIGHTS_TRANSFER_TIMEOUT_S: '60' });

const plan = {
  version: 'v3',
  buckets: [
    { bucket_id: 4, size: 0, consumer_ranks: [0], items: [] },
    { bucket_id: 9, size: 0, consumer_ranks: [0], items: [] },
  ],
} as unknown as Plan;

async function world(size: number): Promise<Transport[]> {
  const dir = mkdtempSync(join('/dev/shm', 'hw-vote-'));
  dirs.push(dir);
  return Promise.all(
    Array.from({ length: size }, (_, rank) =>
      localTransportProvider.create({ rank, worldSize: size, config, rendezvous: { dir } }),
    ),
  );
}

describe('commit vote', { timeout: 120_000 }, () => {
  it('uses bucket ids above every bucket of the plan, one per rank', () => {
    expect([0, 1, 2].map((r) => voteBucketId(plan, r))).toEqual([10, 11, 12]);
    expect(voteBucketId({ buckets: [] } as unknown as Plan, 0)).toBe(0);
  });

  it('every rank learns every vote: all yes commits, one no refuses everywhere', async () => {
    const ts = await world(3);
    try {
      const yes = await Promise.all(
        ts.map((transport) => voteOnCommit({ plan, transport, ready: true, timeoutS: 60 })),
      );
      expect(yes).toEqual([0, 1, 2].map(() => ({ ready: true, refused: [] })));
      const votes = [true, false, true];
      const mixed = await Promise.all(
        ts.map((transport, r) => voteOnCommit({ plan, transport, ready: votes[r] as boolean, timeoutS: 60 })),
      );
      expect(mixed).toEqual([0, 1, 2].map(() => ({ ready: false, refused: [1] })));
    } finally {
      await Promise.all(ts.map((t) => t.close()));
    }
  });

  it('a rank that never votes fails the vote, naming it; nothing is committed', async () => {
    const ts = await world(2);
    try {
      // Rank 0 never calls the vote (crashed after staging): rank 1 gives up after its timeout.
      const err = await voteOnCommit({ plan, transport: ts[1] as Transport, ready: true, timeoutS: 1 }).catch(
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(CommitError);
      expect((err as CommitError).message).toMatch(
        /^rank 1: no commit vote from rank 0 for v3 \(.*\); nothing is committed$/,
      );
      expect((err as CommitError).details).toEqual({ rank: 0 });
    } finally {
      await Promise.all(ts.map((t) => t.close()));
    }
  });

  it('an abort signal ends the vote at once', async () => {
    const ts = await world(2);
    try {
      const ctrl = new AbortController();
      ctrl.abort(new Error('update cancelled'));
      const err = await voteOnCommit({
        plan,
        transport: ts[1] as Transport,
        ready: true,
        timeoutS: 600,
        signal: ctrl.signal,
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(CommitError);
      expect((err as Error).message).toContain('no commit vote from rank 0 for v3');
    } finally {
      await Promise.all(ts.map((t) => t.close()));
    }
  });
});
