/**
 * The two one-rank transports the worker agent uses: `self` (the rank is source and only consumer)
 * and `segment-handles` (a late rank copies buckets from a peer's staging segment on this host).
 * Both keep the provider contract and pass the rank compliance suite in a world of one; the
 * segment-handles transport also reads a real segment file of another rank, refuses a handle that
 * does not fit, and names a segment that ends early.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkProviderContract, runRankCompliance } from '@hotweights/compliance';
import { loadConfig, TransportError } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';
import {
  type SegmentHandle,
  SegmentHandleTransport,
  SelfTransport,
  segmentHandleProvider,
  selfTransportProvider,
} from '../src/index.js';

const root = mkdtempSync(join('/dev/shm', 'hw-seg-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const config = loadConfig({});
const alone = { rank: 0, worldSize: 1, launcher: 'none' as const, config };

describe('self transport', () => {
  it('keeps the provider contract and passes the rank compliance suite alone', async () => {
    const contract = await checkProviderContract(selfTransportProvider, alone, {
      rank: 0,
      worldSize: 1,
      config,
    });
    expect(contract.failures).toEqual([]);
    const t = await selfTransportProvider.create({ rank: 0, worldSize: 1, config });
    const report = await runRankCompliance(t);
    expect(report.failures).toEqual([]);
    expect(report.passed.length).toBeGreaterThan(5);
    await t.close();
  });

  it('is unavailable in a world of several ranks and refuses a broadcast that needs another rank', async () => {
    expect(await selfTransportProvider.probe({ ...alone, worldSize: 2 })).toMatchObject({ available: false });
    const t = new SelfTransport(1, 2);
    await t.broadcast({ bucketId: 0, root: 1, ranks: [1], data: new Uint8Array(4) });
    await expect(
      t.broadcast({ bucketId: 1, root: 0, ranks: [0, 1], data: new Uint8Array(4) }),
    ).rejects.toThrowError(/bucket 1 from rank 0 to \[0,1\] needs another rank/);
  });
});

describe('segment-handles transport', () => {
  it('keeps the provider contract and passes the rank compliance suite alone', async () => {
    const provider = segmentHandleProvider(new Map());
    const contract = await checkProviderContract(provider, alone, { rank: 0, worldSize: 1, config });
    expect(contract.failures).toEqual([]);
    const t = await provider.create({ rank: 0, worldSize: 1, config });
    const report = await runRankCompliance(t);
    expect(report.failures).toEqual([]);
    await t.close();
  });

  it("fills a bucket from another rank's segment, and names a handle that does not fit", async () => {
    const seg = join(root, 'peer.seg');
    const bytes = Buffer.from(Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff));
    writeFileSync(seg, Buffer.concat([Buffer.alloc(100, 0xee), bytes]));
    const handles = new Map<number, SegmentHandle>([
      [3, { path: seg, offset: 100, length: 300, rank: 0 }],
      [4, { path: seg, offset: 350, length: 100, rank: 0 }],
      [5, { path: join(root, 'gone.seg'), offset: 0, length: 8, rank: 2 }],
    ]);
    const t = new SegmentHandleTransport(1, 3, handles);
    const data = new Uint8Array(300);
    await t.broadcast({ bucketId: 3, root: 0, ranks: [0, 1], data });
    expect(Buffer.compare(data, bytes)).toBe(0);

    const wrongSize = await t
      .broadcast({ bucketId: 3, root: 0, ranks: [0, 1], data: new Uint8Array(10) })
      .catch((e: unknown) => e);
    expect(wrongSize).toBeInstanceOf(TransportError);
    expect((wrongSize as Error).message).toMatch(/no handle of 10 B for bucket 3 \(the handle holds 300 B\)/);
    await expect(
      t.broadcast({ bucketId: 4, root: 0, ranks: [0, 1], data: new Uint8Array(100) }),
    ).rejects.toThrowError(/ends 50 B before bucket 4 does/);
    await expect(
      t.broadcast({ bucketId: 5, root: 2, ranks: [1, 2], data: new Uint8Array(8) }),
    ).rejects.toThrowError(/cannot open the segment of rank 2 for bucket 5/);
    await expect(
      t.broadcast({ bucketId: 9, root: 0, ranks: [0, 1], data: new Uint8Array(8) }),
    ).rejects.toThrowError(/no handle of 8 B for bucket 9/);
  });
});
