import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { HASH_ALGORITHMS, type HashAlgorithm, hashItem } from '@hotweights/manifest';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { xxh3 } from '@node-rs/xxhash';
import { afterAll, describe, expect, it } from 'vitest';
// resolveHashIo and the io options are not re-exported by the package entry: test the module.
import {
  type HashRange,
  type HashTask,
  hashRanges,
  resolveHashIo,
  startHashWorkers,
} from '../src/hash-pool.js';
import { bytes, tempDir } from './fixtures.js';

const blake3 = (b: Uint8Array) => new Blake3Hasher().update(b).digest('hex');

const tmp = tempDir('hash-pool');
afterAll(() => tmp.cleanup());
const MIB = 1024 * 1024;

const reference = {
  blake3: (b: Uint8Array) => blake3(b),
  'xxh3-64': (b: Uint8Array) => xxh3.xxh64(b, 0n).toString(16).padStart(16, '0'),
  sha256: (b: Uint8Array) => createHash('sha256').update(b).digest('hex'),
} as const;

/** Contiguous ranges of the given lengths starting at `start`. */
function rangesOf(start: number, lengths: number[]): HashRange[] {
  const out: HashRange[] = [];
  let offset = start;
  for (const length of lengths) {
    out.push({ offset, length });
    offset += length;
  }
  return out;
}

/** Lines of /proc/self/maps that map `path` (worker threads share the process's maps). */
const mappingsOf = (path: string) =>
  readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.endsWith(` ${path}`)).length;

describe('hashRanges', () => {
  // 9 MiB + a bit: ranges below cross 2 MiB piece boundaries, start off page boundaries, and include
  // empty ranges, a one-byte range and one range spanning several pieces (hashed as one digest).
  const path = join(tmp.path, 'data.bin');
  const data = bytes(9 * MIB + 4321, 7);
  writeFileSync(path, data);
  const tasks: HashTask[] = [
    { path, ranges: rangesOf(0, [8, 0, 1, 3 * MIB + 17, 5 * MIB - 3]) },
    { path, ranges: rangesOf(8 * MIB + 26, [MIB + 4000, 0]) },
    { path, ranges: rangesOf(4097, [2 * MIB - 4097, 2 * MIB, 1]) },
    { path, ranges: [] },
  ];
  const expected = (algo: keyof typeof reference) =>
    tasks.map((t) => t.ranges.map((r) => reference[algo](data.subarray(r.offset, r.offset + r.length))));

  it('maps files through the shm addon on this machine', async () => {
    const io = await resolveHashIo();
    expect(io.reason).toBeUndefined();
    expect(io.io).toBe('mmap');
    expect(await resolveHashIo('read')).toMatchObject({ io: 'read' });
  });

  for (const algo of ['blake3', 'xxh3-64', 'sha256'] as const) {
    it(`${algo}: mapped and read() hashing give the exact digests of each range, in task order`, async () => {
      for (const io of ['mmap', 'read'] as const) {
        for (const [threads, mainThread] of [
          [1, true],
          [2, true],
          [3, true],
          [1, false],
          [2, false],
        ] as const) {
          const got = await hashRanges(tasks, {
            mainThread,
            algo,
            io,
            threads,
            pieceBytes: 2 * MIB,
            chunkBytes: 64 * 1024,
          });
          expect(got).toEqual(expected(algo));
        }
      }
    });
  }

  it('uses workers started ahead, booting or booted, with the same digests; unused ones stop', async () => {
    const threadCount = () => readdirSync('/proc/self/task').length;
    for (const waitForBoot of [false, true]) {
      for (const [threads, mainThread] of [
        [2, true],
        [3, true],
        [2, false],
      ] as const) {
        const options = { algo: 'blake3', io: 'mmap', threads, mainThread, pieceBytes: 2 * MIB } as const;
        const started = startHashWorkers(options);
        if (waitForBoot) await started.ready();
        expect(await hashRanges(tasks, { ...options, started })).toEqual(expected('blake3'));
        // Taken by that call: nothing is left to close, and a second take gets nothing.
        expect(await started.take()).toBeNull();
        await started.close();
      }
    }
    // Fewer tasks than pre-started workers: the extra ones are not used, and stop.
    const one = [tasks[0] as HashTask];
    const started = startHashWorkers({ algo: 'xxh3-64', threads: 3 });
    await started.ready();
    expect(await hashRanges(one, { algo: 'xxh3-64', threads: 3, started })).toEqual([expected('xxh3-64')[0]]);
    // Started, never taken (publish failing before it hashes): close() stops every thread.
    const before = threadCount();
    const idle = startHashWorkers({ algo: 'blake3', threads: 3 });
    await idle.ready();
    expect(threadCount()).toBeGreaterThan(before);
    await idle.close();
    // Not exactly `before`: threads of earlier pools still ending, or of libuv's pool, come and go.
    expect(threadCount()).toBeLessThanOrEqual(before);
  });

  it('keeps at most one piece mapped per worker and unmaps each as soon as it is hashed', async () => {
    const big = join(tmp.path, 'big.bin');
    const bigData = bytes(24 * MIB, 3);
    writeFileSync(big, bigData);
    // One task per 1 MiB entry, and one 12 MiB entry hashed through six 2 MiB pieces.
    const many: HashTask[] = [];
    for (let i = 0; i < 12; i++) many.push({ path: big, ranges: [{ offset: i * MIB, length: MIB }] });
    many.push({ path: big, ranges: [{ offset: 12 * MIB, length: 12 * MIB }] });
    let most = 0;
    const got = await hashRanges(many, {
      algo: 'blake3',
      io: 'mmap',
      threads: 2,
      pieceBytes: 2 * MIB,
      onBytes: () => {
        most = Math.max(most, mappingsOf(big));
      },
    });
    expect(got).toEqual(
      many.map((t) => t.ranges.map((r) => blake3(bigData.subarray(r.offset, r.offset + r.length)))),
    );
    // Mapped (the main thread reports progress while its piece is still mapped), and bounded.
    expect(most).toBeGreaterThanOrEqual(1);
    expect(most).toBeLessThanOrEqual(2);
    expect(mappingsOf(big)).toBe(0);
  });

  it('a file shorter than its entries fails naming the file (checked before mapping, no SIGBUS)', async () => {
    const short = join(tmp.path, 'short.bin');
    writeFileSync(short, bytes(3 * MIB, 1));
    const good = join(tmp.path, 'good.bin');
    writeFileSync(good, bytes(MIB, 2));
    const bad: HashTask = { path: short, ranges: rangesOf(0, [MIB, 4 * MIB]) };
    for (const io of ['mmap', 'read'] as const) {
      // On the main thread, and in a worker thread.
      for (const mainThread of [true, false]) {
        await expect(
          hashRanges([bad, { path: good, ranges: rangesOf(0, [MIB]) }], {
            algo: 'blake3',
            io,
            threads: 2,
            mainThread,
            pieceBytes: 2 * MIB,
          }),
        ).rejects.toThrowError(/cannot hash .*short\.bin: file is 3145728 bytes but entries end at byte/);
      }
    }
    await expect(
      hashRanges([{ path: join(tmp.path, 'missing.bin'), ranges: rangesOf(0, [1]) }], { algo: 'blake3' }),
    ).rejects.toThrowError(/cannot hash .*missing\.bin: ENOENT/);
  });

  it('the main thread hashes in slices and lets the event loop run between them', async () => {
    const big = join(tmp.path, 'one-tensor.bin');
    const bigData = bytes(20 * MIB, 5);
    writeFileSync(big, bigData);
    const events: string[] = [];
    const running = hashRanges([{ path: big, ranges: [{ offset: 0, length: bigData.length }] }], {
      algo: 'blake3',
      threads: 1,
      onBytes: (n) => events.push(`bytes ${n}`),
    });
    setImmediate(() => events.push('event loop'));
    // One entry is one digest however many slices it is hashed in.
    expect(await running).toEqual([[blake3(bigData)]]);
    expect(events).toEqual(['bytes 8388608', 'event loop', 'bytes 8388608', 'bytes 4194304']);
  });

  it('refuses a piece size that is not a multiple of 2 MiB', async () => {
    await expect(hashRanges(tasks, { algo: 'blake3', pieceBytes: MIB })).rejects.toThrowError(
      /pieceBytes 1048576: expected a positive multiple of 2 MiB/,
    );
  });

  it('hashes exactly the algorithms of the one table, on workers and the main thread alike', async () => {
    const task: HashTask = { path, ranges: rangesOf(5, [3 * MIB, 17]) };
    for (const algo of HASH_ALGORITHMS) {
      const want = task.ranges.map((r) => hashItem(algo, [data.subarray(r.offset, r.offset + r.length)]));
      for (const mainThread of [true, false]) {
        const [got] = await hashRanges([task], { algo, threads: 2, mainThread });
        expect(got?.map((hex) => `${algo}:${hex}`)).toEqual(want);
      }
    }
    for (const algo of ['md5', 'xxh3-128'])
      await expect(hashRanges([task], { algo: algo as HashAlgorithm })).rejects.toThrowError(
        new RegExp(`unknown hash algorithm "${algo}": expected one of ${HASH_ALGORITHMS.join(', ')}$`),
      );
  });
});
