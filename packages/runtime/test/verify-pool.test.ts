/**
 * Verification hashing on worker threads: workers map staged segments themselves and return the
 * same digests as hashing on the main thread, for every algorithm and for items split over
 * several segments; a corrupted staged byte is caught through the pool like anywhere else.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig, type Transport, VerificationError } from '@hotweights/core';
import { HASH_ALGORITHMS, hashItem } from '@hotweights/manifest';
import { HostStaging } from '@hotweights/runtime';
import { localTransportProvider } from '@hotweights/transport-local';
import { afterAll, describe, expect, it } from 'vitest';
import { replicateRank } from '../src/replicator.js';
import { hashHere, VerifyPool } from '../src/verify-pool.js';
import { makePlan, writeCheckpoint } from './plan-fixture.js';

const work = mkdtempSync(join(tmpdir(), 'hw-verify-pool-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-verify-pool-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

const bucket = (id: number, size: number) => ({ bucket_id: id, size, consumer_ranks: [0], items: [] });

describe('VerifyPool', { timeout: 60_000 }, () => {
  it('hashes ranges of files in place, on workers and on the calling thread alike', async () => {
    const pool = await VerifyPool.create(2);
    expect(pool).toBeDefined();
    const bytes = randomBytes(70_000_001);
    const file = join(work, 'landed.bin');
    writeFileSync(file, bytes);
    // Unaligned ranges, one longer than a worker maps at once (32 MiB), and a split item's parts.
    const whole = { path: file, offset: 4099, length: 69_000_000 };
    const parts = [
      { path: file, offset: 10, length: 1_000_000 },
      { path: file, offset: 1_000_010, length: 3 },
    ];
    for (const algo of HASH_ALGORITHMS) {
      const want = hashItem(algo, [bytes.subarray(4099, 4099 + 69_000_000)]);
      expect(`${algo}:${await pool?.hash(algo, [whole])}`).toBe(want);
      expect(`${algo}:${hashHere(algo, [whole])}`).toBe(want);
      expect(`${algo}:${await pool?.hash(algo, parts)}`).toBe(
        hashItem(algo, [bytes.subarray(10, 1_000_013)]),
      );
    }
    await pool?.close();
  });

  it('hands a pool started ahead to the next pool asked for of its size, and only to that one', async () => {
    const warmed = VerifyPool.warm(3);
    const other = await VerifyPool.create(2);
    expect(other).not.toBe(await warmed);
    const taken = await VerifyPool.create(3);
    expect(taken).toBe(await warmed);
    const fresh = await VerifyPool.create(3);
    expect(fresh).not.toBe(taken);
    // The pool started ahead hashes like any other.
    const file = join(work, 'warm.bin');
    const bytes = randomBytes(1 << 20);
    writeFileSync(file, bytes);
    expect(`blake3:${await taken?.hash('blake3', [{ path: file, offset: 0, length: bytes.length }])}`).toBe(
      hashItem('blake3', [bytes]),
    );
    await Promise.all([other?.close(), taken?.close(), fresh?.close()]);
  });

  it('hashes staged segments on workers exactly as the main thread does', async () => {
    const staging = await HostStaging.open({ dir: mkdtempSync(join(shm, 'pool-')) });
    const pool = await VerifyPool.create(2);
    expect(pool).toBeDefined();
    const a = await staging.allocate('v1', bucket(0, 3 << 20));
    const b = await staging.allocate('v1', bucket(1, 5001));
    a.bytes.set(randomBytes(a.bytes.byteLength));
    b.bytes.set(randomBytes(b.bytes.byteLength));
    // An unaligned range inside a segment, and a "split" item across two segments.
    const inner = a.bytes.subarray(4097, 4097 + 1_000_003);
    for (const algo of HASH_ALGORITHMS) {
      expect(`${algo}:${await pool?.hash(algo, [inner])}`).toBe(hashItem(algo, [inner]));
      expect(`${algo}:${await pool?.hash(algo, [a.bytes, b.bytes])}`).toBe(
        hashItem(algo, [a.bytes, b.bytes]),
      );
    }
    // A segment recycled for another bucket (renamed, new bytes) is hashed from its new bytes,
    // through the mapping the worker kept.
    await staging.drop('v1', 0);
    const again = await staging.allocate('v1', bucket(2, 2 << 20));
    again.bytes.set(randomBytes(again.bytes.byteLength));
    for (let i = 0; i < 4; i++) {
      expect(`blake3:${await pool?.hash('blake3', [again.bytes])}`).toBe(hashItem('blake3', [again.bytes]));
    }
    // Bytes outside any segment are hashed on the calling thread, with the same result.
    const plain = randomBytes(70_000);
    expect(`blake3:${await pool?.hash('blake3', [plain])}`).toBe(hashItem('blake3', [plain]));
    await pool?.close();
    await staging.close();
  });

  it('catches a corrupted staged byte of a large version hashed on workers', async () => {
    const root = join(work, 'big');
    const files = writeCheckpoint(root, { 'a.bin': 9 << 20, 'b.bin': 9 << 20, 'c.bin': 1234 });
    const plan = makePlan(root, files, { bucketBytes: 4 << 20 });
    const dir = mkdtempSync(join(shm, 'big-'));
    const config = loadConfig({ HOTWEIGHTS_HASH_THREADS: '2' });
    const run = async (corrupt?: number) => {
      const staging = await HostStaging.open({ dir });
      const inner = await localTransportProvider.create({ rank: 0, worldSize: 1, config });
      const transport: Transport = {
        name: inner.name,
        rank: 0,
        worldSize: 1,
        close: () => inner.close(),
        async broadcast(req) {
          await inner.broadcast(req);
          if (req.bucketId === corrupt) (req.data as Uint8Array)[req.data.length >> 1] ^= 0x10;
        },
      };
      try {
        return await replicateRank({ plan, rank: 0, worldSize: 1, transport, staging, config });
      } finally {
        await transport.close();
        await staging.close();
      }
    };
    expect((await run()).itemsVerified).toBe(3);
    const victim = plan.buckets[3];
    const err = await run(victim?.bucket_id).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(VerificationError);
    expect((err as Error).message).toMatch(
      new RegExp(`^rank 0: item ${victim?.items[0]?.key} .* does not match its hash`),
    );
  });
});
