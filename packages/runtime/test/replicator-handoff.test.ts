/**
 * The Replicator handing verified buckets on (an adapter's streaming prepare) and reusing their
 * staging: each bucket is handed over exactly once, only after every item in it verified (a split
 * tensor's buckets only once all its parts did), staging stays near the window, and a corrupted
 * byte is never handed over.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type PlanBucket, type Transport, VerificationError } from '@hotweights/core';
import { HostStaging } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, describe, expect, it } from 'vitest';
import { replicateRank } from '../src/replicator.js';
import { makePlan, writeCheckpoint } from './plan-fixture.js';

const work = mkdtempSync(join(tmpdir(), 'hw-handoff-test-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-handoff-test-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

function checkpoint(name: string) {
  const root = join(work, name);
  const spec: Record<string, number> = { 'big.bin': 200_001 };
  for (let i = 0; i < 16; i++) spec[`f${String(i).padStart(2, '0')}.bin`] = 40_000;
  return { root, files: writeCheckpoint(root, spec) };
}

const segments = (dir: string) => readdirSync(dir).filter((n) => n.endsWith('.seg')).length;

describe('replicateRank with onBucketReady', { timeout: 60_000 }, () => {
  it('hands every bucket over once, after its items verified, and reuses staging within the window', async () => {
    const { root, files } = checkpoint('ok');
    const plan = makePlan(root, files, { bucketBytes: 64 * 1024 });
    const split = plan.buckets.filter((b) => b.items.some((i) => i.part));
    expect(split.length).toBe(4);
    expect(plan.buckets.length).toBe(19);
    const dir = mkdtempSync(join(shm, 'ok-'));
    const staging = await HostStaging.open({ dir });
    const inner = await localTransportProvider.create({ rank: 0, worldSize: 1, config: loadConfig({}) });
    const log: string[] = [];
    // Records when each bucket's bytes are in staging (before they are verified).
    const transport: Transport = {
      name: inner.name,
      rank: 0,
      worldSize: 1,
      close: () => inner.close(),
      async broadcast(req) {
        await inner.broadcast(req);
        log.push(`landed ${req.bucketId}`);
      },
    };
    const handed: number[] = [];
    let most = 0;
    const report = await replicateRank({
      plan,
      rank: 0,
      worldSize: 1,
      transport,
      staging,
      config: loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '2' }),
      onBucketReady: async (bucket: PlanBucket, bytes: Uint8Array) => {
        handed.push(bucket.bucket_id);
        log.push(`handed ${bucket.bucket_id}`);
        most = Math.max(most, segments(dir));
        // What is handed over is exactly the checkpoint's bytes.
        for (const it of bucket.items) {
          const want = (files[it.uri] as Buffer).subarray(it.file_offset, it.file_offset + it.nbytes);
          expect(Buffer.compare(Buffer.from(bytes.subarray(it.offset, it.offset + it.nbytes)), want)).toBe(0);
        }
        await new Promise((r) => setTimeout(r, 2));
      },
    });
    expect(report.bucketsLanded).toBe(19);
    expect(report.itemsVerified).toBe(17);
    expect([...handed].sort((a, b) => a - b)).toEqual(plan.buckets.map((b) => b.bucket_id));
    // The split tensor's buckets are handed over only once its last part has landed and checked.
    const lastPart = Math.max(...split.map((b) => b.bucket_id));
    for (const b of split) {
      expect(log.indexOf(`handed ${b.bucket_id}`)).toBeGreaterThan(log.indexOf(`landed ${lastPart}`));
    }
    // Whole items are handed over without waiting for later buckets.
    const later = plan.buckets.filter((b) => b.bucket_id > lastPart);
    expect(log.indexOf(`handed ${later[0]?.bucket_id}`)).toBeLessThan(
      log.indexOf(`landed ${later.at(-1)?.bucket_id}`),
    );
    // Staging never held more than the window plus the pinned parts, far below the 19 buckets,
    // and every bucket was dropped once handed over.
    expect(most).toBeLessThanOrEqual(2 + split.length);
    expect(staging.list(plan.version)).toEqual([]);
    await staging.close();
    await transport.close();
    expect(segments(dir)).toBe(0);
  });

  it('never hands over a bucket whose bytes do not match, and fails naming the item', async () => {
    const { root, files } = checkpoint('bad');
    const plan = makePlan(root, files, { bucketBytes: 64 * 1024 });
    const dir = mkdtempSync(join(shm, 'bad-'));
    const staging = await HostStaging.open({ dir });
    const inner = await localTransportProvider.create({ rank: 0, worldSize: 1, config: loadConfig({}) });
    const victim = plan.buckets[5] as PlanBucket;
    // Flips one landed byte of bucket 5, as a faulty link or a stray write would.
    const transport: Transport = {
      name: inner.name,
      rank: 0,
      worldSize: 1,
      close: () => inner.close(),
      async broadcast(req) {
        await inner.broadcast(req);
        if (req.bucketId === victim.bucket_id) (req.data as Uint8Array)[0] ^= 0xff;
      },
    };
    const handed: number[] = [];
    const err = await replicateRank({
      plan,
      rank: 0,
      worldSize: 1,
      transport,
      staging,
      config: loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '1' }),
      onBucketReady: async (bucket) => {
        handed.push(bucket.bucket_id);
      },
    }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect((err as Error).message).toMatch(
      new RegExp(`^rank 0: item ${victim.items[0]?.key} .*bucket ${victim.bucket_id}\\) does not match`),
    );
    expect(handed).not.toContain(victim.bucket_id);
    // Everything staged for the failed version is gone.
    expect(staging.list(plan.version)).toEqual([]);
    await staging.close();
    await transport.close();
    expect(segments(dir)).toBe(0);
  });
});
