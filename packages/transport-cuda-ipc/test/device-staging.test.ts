/**
 * Device staging over the driver stand-in (a test double of the CUDA driver API; no GPU ran
 * here): buckets get a device buffer and a host copy, spares are reused and freed once idle, and
 * a device without room fails with a StagingError before or at allocation, naming the fix.
 */
import { readdirSync } from 'node:fs';
import { loadConfig, type PlanBucket } from '@hotweights/core';
import { afterEach, describe, expect, it } from 'vitest';
import { CudaDeviceStaging } from '../src/device-staging.js';
import { standInEnv } from './stand-in.js';

const bucket = (id: number, size: number) =>
  ({ bucket_id: id, size, items: [], consumer_ranks: [0] }) as unknown as PlanBucket;
const mine = () => readdirSync('/dev/shm').filter((n) => n.startsWith(`hwcuda-standin.${process.pid}.`));

async function open() {
  const config = loadConfig(standInEnv());
  return CudaDeviceStaging.open({ rank: 0, localRank: 0, config, pinned: true });
}

afterEach(() => {
  delete process.env.CUDA_STANDIN_MEM_MB;
});

describe('CudaDeviceStaging', () => {
  it('stages a bucket in device memory with a host copy, reuses it, and frees everything once idle', async () => {
    const s = await open();
    const a = await s.allocate('v1', bucket(0, 1000));
    expect(a.device?.size).toBe(1000);
    expect(a.bytes.byteLength).toBe(1000);
    a.bytes.fill(7);
    await a.device?.copyFromHost(0, a.bytes);
    const back = new Uint8Array(1000);
    await a.device?.copyToHost(0, back);
    expect(back.every((b) => b === 7)).toBe(true);
    expect(await s.allocate('v1', bucket(0, 1000))).toBe(a); // same bucket, same staging
    expect(s.list('v1').map((b) => b.bucketId)).toEqual([0]);
    await s.drop('v1', 0);
    expect(mine()).toEqual([]); // nothing staged: spares freed
    await s.allocate('v2', bucket(1, 500));
    await s.allocate('v2', bucket(2, 500));
    expect(mine().length).toBe(2);
    await s.release('v2');
    expect(mine()).toEqual([]);
    expect(s.pinFailure).toBeUndefined();
  });

  it('fails before anything lands when the device cannot hold the update, and at allocation when it runs out', async () => {
    process.env.CUDA_STANDIN_MEM_MB = '1';
    const s = await open();
    await expect(s.ensureCapacity(3 * 2 ** 20, 'version v9 on rank 0')).rejects.toMatchObject({
      code: 'HW_STAGING_NO_SPACE',
      message: expect.stringMatching(
        /device 0 has 1\.0 MiB free, version v9 on rank 0 needs 3\.0 MiB: lower HOTWEIGHTS_BUCKET_MB/,
      ),
    });
    await s.allocate('v9', bucket(0, 2 ** 19));
    await expect(s.allocate('v9', bucket(1, 2 ** 20))).rejects.toMatchObject({
      code: 'HW_STAGING_NO_SPACE',
      message: expect.stringMatching(
        /device 0 is out of memory allocating 1\.0 MiB for bucket 1 of v9 on rank 0/,
      ),
    });
    await s.close();
    expect(mine()).toEqual([]);
  });
});
