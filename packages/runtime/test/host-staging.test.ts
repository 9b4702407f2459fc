import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StagingError } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';
import { HostStaging } from '../src/host-staging.js';
import { spawnRank } from './spawn-ranks.js';

const root = mkdtempSync(join('/dev/shm', 'hw-staging-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

const bucket = (id: number, size: number) => ({ bucket_id: id, size, consumer_ranks: [0], items: [] });

describe('host staging', { timeout: 60_000 }, () => {
  it('stages buckets as shared-memory segments named by version, rank and bucket', async () => {
    const dir = mkdtempSync(join(root, 's-'));
    const staging = await HostStaging.open({ dir, rank: 2 });
    expect(staging.zeroCopy).toBe(true);
    const a = await staging.allocate('v1/ft', bucket(0, 5000));
    const b = await staging.allocate('v1/ft', bucket(1, 0));
    a.bytes.fill(0xab);
    await staging.seal('v1/ft', 0);
    expect(a.segment?.path).toMatch(/hotweights\.p\d+\.[0-9a-f]+\.v1_ft_[0-9a-f]{8}\.r2\.b0\.seg$/);
    // The segment file holds exactly what was written through the view (zero-copy mapping).
    const onDisk = readFileSync(a.segment?.path as string);
    expect(onDisk.length).toBe(5000);
    expect(onDisk.every((x) => x === 0xab)).toBe(true);
    expect(staging.get('v1/ft', 0)).toBe(a);
    expect(staging.list('v1/ft').map((s) => s.bucketId)).toEqual([0, 1]);
    expect(b.bytes.length).toBe(0);
    await staging.release('v1/ft');
    expect(staging.list('v1/ft')).toEqual([]);
    expect(existsSync(a.segment?.path as string)).toBe(false);
    // The released segment is reused (renamed, same memory) for the next version's bucket.
    const c = await staging.allocate('v2', bucket(0, 4000));
    expect(c.bytes.buffer).toBe(a.bytes.buffer);
    expect(readdirSync(dir).filter((n) => n.includes('.v2.'))).toHaveLength(1);
    await staging.close();
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a bucket that does not fit before writing anything', async () => {
    const dir = mkdtempSync(join(root, 'full-'));
    const staging = await HostStaging.open({ dir });
    const err = await staging.allocate('v1', bucket(0, 2 ** 50)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(StagingError);
    expect((err as StagingError).code).toBe('HW_STAGING_NO_SPACE');
    expect((err as Error).message).toMatch(/not enough shared memory in .* for bucket 0 of v1/);
    await expect(staging.ensureCapacity(2 ** 50, 'the whole update')).rejects.toThrowError(
      /the whole update/,
    );
    expect(readdirSync(dir)).toEqual([]);
    await staging.close();
  });

  it('reclaims segments left by a crashed run on the next start, and only those', async () => {
    const dir = mkdtempSync(join(root, 'stale-'));
    const live = await HostStaging.open({ dir });
    await live.allocate('v-live', bucket(0, 100));
    const crashed = spawnRank(fileURLToPath(new URL('./fixtures/stage-and-die.ts', import.meta.url)), [dir]);
    const path = await new Promise<string>((resolve) => {
      let out = '';
      crashed.child.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('\n')) resolve(out.trim());
      });
    });
    expect(existsSync(path)).toBe(true);
    crashed.child.kill('SIGKILL');
    await crashed.done;
    expect(existsSync(path)).toBe(true);
    const next = await HostStaging.open({ dir });
    expect(existsSync(path)).toBe(false);
    // The live process's segment is untouched.
    expect(live.list('v-live')).toHaveLength(1);
    expect(existsSync(live.get('v-live', 0)?.segment?.path as string)).toBe(true);
    expect(await next.reclaimStale()).toBe(0);
    await live.close();
    await next.close();
  });
});
