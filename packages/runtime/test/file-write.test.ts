/**
 * Kernel copies of byte ranges between real files (src/file-write.ts): split at SHARE_ALIGN so a
 * filesystem with reflinks can share the aligned interior, and byte-exact wherever the range
 * starts and ends. On ext4 and tmpfs every piece is copied; XFS sharing is measured by
 * bench/replicate/xfs.sh.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { copyFileRange, SHARE_ALIGN, sharePieces } from '../src/file-write.js';

const A = SHARE_ALIGN;

describe('sharePieces', () => {
  it('splits a range into an unaligned head, the aligned interior and an unaligned tail', () => {
    expect(sharePieces(1000, 1000, 3 * A)).toEqual([
      [0, A - 1000],
      [A - 1000, 2 * A],
      [3 * A - 1000, 1000],
    ]);
    // Offsets differ by a whole number of alignments: still shareable.
    expect(sharePieces(A + 8, 5 * A + 8, 2 * A)).toEqual([
      [0, A - 8],
      [A - 8, A],
      [2 * A - 8, 8],
    ]);
  });

  it('leaves out empty pieces: an aligned range is one piece, a range inside one block too', () => {
    expect(sharePieces(0, 0, 4 * A)).toEqual([[0, 4 * A]]);
    expect(sharePieces(A, A, A + 5)).toEqual([
      [0, A],
      [A, 5],
    ]);
    expect(sharePieces(10, 10, 100)).toEqual([[0, 100]]);
    expect(sharePieces(A - 10, A - 10, 30)).toEqual([
      [0, 10],
      [10, 20],
    ]);
    expect(sharePieces(0, 0, 0)).toEqual([]);
  });

  it('keeps a range whose offsets sit at different places within a block whole: nothing can be shared', () => {
    expect(sharePieces(1000, 5000, 3 * A)).toEqual([[0, 3 * A]]);
    expect(sharePieces(5000, 1000, 3 * A)).toEqual([[0, 3 * A]]);
  });

  it('covers every byte of the range exactly once, in order', () => {
    for (const [f, t, n] of [
      [1, 1, 7 * A + 3],
      [A - 1, A - 1, 2],
      [3 * A, 7 * A, A - 1],
      [2 ** 33 + 17, 17, 5 * A],
    ] as const) {
      let at = 0;
      for (const [start, len] of sharePieces(f, t, n)) {
        expect(start).toBe(at);
        expect(len).toBeGreaterThan(0);
        at += len;
      }
      expect(at).toBe(n);
    }
  });
});

describe('copyFileRange between real files', { timeout: 60_000 }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'hw-file-write-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const src = join(dir, 'src');
  const bytes = randomBytes(5 * A + 123);
  writeFileSync(src, bytes);

  /** Copies [from, from + n) of src to `at` in a new file of `size` zero bytes; returns its bytes. */
  async function copied(from: number, at: number, n: number, size: number): Promise<Buffer> {
    const dest = join(dir, `dest-${from}-${at}-${n}`);
    writeFileSync(dest, Buffer.alloc(size));
    const [fi, fo] = [await open(src, 'r'), await open(dest, 'r+')];
    try {
      await copyFileRange(fi, from, fo, at, n);
    } finally {
      await fi.close();
      await fo.close();
    }
    return readFileSync(dest);
  }

  it('is byte-exact for ranges with an unaligned head and tail, aligned, tiny, and at different alignments', async () => {
    const size = bytes.length;
    for (const [from, at, n] of [
      [1000, 1000, 4 * A], // head, interior, tail
      [0, 0, 3 * A], // aligned: one piece
      [7, 7, 20], // inside one block
      [A + 1, A + 1, size - A - 1], // up to the source's end (a partial last block)
      [1000, 5000, 2 * A], // different places within a block: copied whole
    ] as const) {
      const out = await copied(from, at, n, size);
      const want = Buffer.alloc(size);
      bytes.copy(want, at, from, from + n);
      expect(Buffer.compare(out, want), `${from} -> ${at}, ${n} bytes`).toBe(0);
    }
    // The source is read only.
    expect(Buffer.compare(readFileSync(src), bytes)).toBe(0);
  });

  it('rejects with ESHORT when the source ends inside the range, after an aligned head', async () => {
    const err = await copied(A - 10, A - 10, 5 * A, 8 * A).then(
      () => null,
      (e: unknown) => e as NodeJS.ErrnoException,
    );
    expect(err?.code).toBe('ESHORT');
  });
});
