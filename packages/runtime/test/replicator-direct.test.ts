/**
 * The source rank landing buckets it alone consumes straight in an adapter's files (`copyItem`):
 * those buckets are never broadcast nor staged, the other buckets' broadcasts keep plan order,
 * every item is verified where it landed (a split tensor once all its parts are), and a byte that
 * differs there fails the update naming the item.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ItemSource,
  type LandedRange,
  loadConfig,
  type Plan,
  type PlanItem,
  type Transport,
  VerificationError,
} from '@hotweights/core';
import { copyFileRange, HostStaging } from '@hotweights/runtime';
import { afterAll, describe, expect, it } from 'vitest';
import { interleaveFiles, replicateRank } from '../src/replicator.js';
import { makePlan, writeCheckpoint } from './plan-fixture.js';

const work = mkdtempSync(join(tmpdir(), 'hw-direct-test-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-direct-test-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

/** Lands each item at its place in `<dir>/<uri>` (as the directory adapter does), optionally spoiling one byte. */
function fileLander(dir: string, spoil?: (item: PlanItem) => boolean) {
  const landed: string[] = [];
  const copyItem = async (item: PlanItem, source: ItemSource): Promise<LandedRange> => {
    const path = join(dir, item.uri);
    const out = await open(path, 'a+').then(async (fh) => {
      await fh.close();
      return open(path, 'r+');
    });
    const at = item.file_offset;
    try {
      await copyFileRange(source.file, source.offset, out, at, item.nbytes);
      if (spoil?.(item)) {
        // Flip the byte (the checkpoint is random: a fixed value would be a no-op 1 time in 256).
        const byte = Buffer.alloc(1);
        await out.read(byte, 0, 1, at + 3);
        await out.write(Buffer.from([(byte[0] as number) ^ 0xff]), 0, 1, at + 3);
      }
    } finally {
      await out.close();
    }
    landed.push(item.key + (item.part ? `#${item.part.index}` : ''));
    return { path, offset: at };
  };
  return { copyItem, landed };
}

function recordingTransport(): Transport & { sent: number[] } {
  const sent: number[] = [];
  return {
    name: 'recording',
    rank: 0,
    worldSize: 2,
    sent,
    async broadcast(req) {
      // Rank 1 is not running: rank 0 only sends, so recording the order is all there is to do.
      sent.push(req.bucketId);
    },
    async close() {},
  };
}

/** Replicates `plan` as the only rank of a world of one; resolves to the error it fails with. */
async function aloneFailing(
  plan: Plan,
  copyItem: ReturnType<typeof fileLander>['copyItem'],
): Promise<unknown> {
  const staging = await HostStaging.open({ dir: mkdtempSync(join(shm, 'alone-')) });
  try {
    await replicateRank({
      plan,
      rank: 0,
      worldSize: 1,
      transport: { ...recordingTransport(), worldSize: 1 },
      staging,
      config: loadConfig({}),
      copyItem,
    });
  } catch (err) {
    return err;
  } finally {
    await staging.close();
  }
  throw new Error('replicateRank succeeded where it should have failed');
}

describe('replicateRank with copyItem', { timeout: 60_000 }, () => {
  it('lands buckets only the source consumes in place, verified, and still broadcasts the others in plan order', async () => {
    const root = join(work, 'ckpt');
    const files = writeCheckpoint(root, {
      'big.bin': 150_001,
      'a.bin': 30_000,
      'b.bin': 30_000,
      'c.bin': 30_000,
      'd.bin': 30_000,
      'e.bin': 30_000,
      'f.bin': 30_000,
      'g.bin': 30_000,
    });
    // The split tensor's three buckets and every even bucket after them go to rank 0 (the
    // source) alone, the others to rank 1 only.
    const plan = makePlan(root, files, {
      bucketBytes: 64 * 1024,
      consumers: (i) => (i < 3 || i % 2 === 0 ? [0] : [1]),
    });
    expect(plan.buckets.filter((b) => b.consumer_ranks[0] === 1).length).toBeGreaterThanOrEqual(2);
    expect(plan.buckets.some((b) => b.consumer_ranks[0] === 0 && b.items.some((i) => i.part))).toBe(true);
    const out = mkdtempSync(join(work, 'out-'));
    const lander = fileLander(out);
    const transport = recordingTransport();
    const staging = await HostStaging.open({ dir: mkdtempSync(join(shm, 'ok-')) });
    const report = await replicateRank({
      plan,
      rank: 0,
      worldSize: 2,
      transport,
      staging,
      config: loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '3' }),
      copyItem: lander.copyItem,
    });
    const mine = plan.buckets.filter((b) => b.consumer_ranks.includes(0));
    const theirs = plan.buckets.filter((b) => !b.consumer_ranks.includes(0)).map((b) => b.bucket_id);
    expect(transport.sent).toEqual(theirs);
    expect(report.bucketsLanded).toBe(mine.length);
    expect(report.itemsVerified).toBe(new Set(mine.flatMap((b) => b.items.map((i) => i.key))).size);
    expect(lander.landed.length).toBe(mine.reduce((n, b) => n + b.items.length, 0));
    // Every byte that landed is the checkpoint's, at the checkpoint's offsets.
    for (const item of mine.flatMap((b) => b.items)) {
      const got = readFileSync(join(out, item.uri)).subarray(
        item.file_offset,
        item.file_offset + item.nbytes,
      );
      const want = (files[item.uri] as Buffer).subarray(item.file_offset, item.file_offset + item.nbytes);
      expect(Buffer.compare(got, want), item.key).toBe(0);
    }
    await staging.close();
  });

  it('fails with the item named when a landed byte differs, for whole items and split tensors', async () => {
    const root = join(work, 'ckpt-bad');
    const files = writeCheckpoint(root, { 'big.bin': 150_001, 'small.bin': 20_000 });
    for (const bad of ['small.bin', 'big.bin']) {
      const plan = makePlan(root, files, { bucketBytes: 64 * 1024, consumers: () => [0] });
      const out = mkdtempSync(join(work, 'bad-'));
      const lander = fileLander(out, (item) => item.uri === bad && (item.part?.index ?? 0) === 0);
      const err = await aloneFailing(plan, lander.copyItem);
      expect(err).toBeInstanceOf(VerificationError);
      expect((err as Error).message).toContain(`item ${bad}:0 (${bad}, bucket`);
    }
  });

  it('names the checkpoint file and the item when the checkpoint is shorter than the plan says', async () => {
    const root = join(work, 'ckpt-short');
    const files = writeCheckpoint(root, { 'w.bin': 10_000 });
    const plan = makePlan(root, files, { consumers: () => [0] });
    // The checkpoint shrinks after the plan was made.
    writeCheckpoint(root, { 'w.bin': 4_000 });
    const err = await aloneFailing(plan, fileLander(mkdtempSync(join(work, 'short-'))).copyItem);
    expect((err as { code?: string }).code).toBe('HW_CHECKPOINT');
    expect((err as Error).message).toMatch(/w\.bin in .* ends before item w\.bin:0/);
  });

  it('takes buckets that need no broadcast round-robin over the files they start in, each file in plan order', () => {
    const b = (id: number, uri: string) =>
      ({
        bucket_id: id,
        size: 1,
        consumer_ranks: [0],
        items: [{ uri }],
      }) as unknown as Plan['buckets'][number];
    const order = interleaveFiles([
      b(0, 'a'),
      b(1, 'a'),
      b(2, 'a'),
      b(3, 'b'),
      b(4, 'b'),
      b(5, 'c'),
      b(6, 'a'),
    ]);
    expect(order.map((x) => x.bucket_id)).toEqual([0, 3, 5, 1, 4, 2, 6]);
    expect(interleaveFiles([])).toEqual([]);
  });
});
