import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { mapFile, reserveFdAsync, writeAll } from '@hotweights/shm';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'hw-shm-write-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-shm-write-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

describe('writeAll', { timeout: 30_000 }, () => {
  it('writes a mapped segment into a file at a position, in pieces, byte-exact', async () => {
    const seg = join(shm, 'seg');
    const bytes = randomBytes(3_000_017);
    writeFileSync(seg, bytes);
    const view = mapFile(seg, { length: bytes.length, writable: false });
    const out = join(dir, 'out.bin');
    const fd = openSync(out, 'w');
    try {
      // An odd piece size and an offset inside the view: every byte lands where it belongs.
      await writeAll(fd, view.subarray(5, 2_000_005), 1000, 65_537);
      await writeAll(fd, view.subarray(2_000_005), 1000 + 2_000_000);
      await writeAll(fd, view.subarray(0, 0), 0);
    } finally {
      closeSync(fd);
    }
    const got = readFileSync(out);
    expect(got.length).toBe(1000 + bytes.length - 5);
    expect(got.subarray(0, 1000).every((b) => b === 0)).toBe(true);
    expect(Buffer.compare(got.subarray(1000), bytes.subarray(5))).toBe(0);
  });

  it('rejects with the errno when the descriptor cannot be written', async () => {
    const path = join(dir, 'ro.bin');
    writeFileSync(path, 'x');
    const fd = openSync(path, 'r');
    try {
      const err = await writeAll(fd, new Uint8Array(10), 0).catch((e: unknown) => e);
      expect((err as Error).message).toMatch(/^pwrite failed: Bad file descriptor/);
      expect((err as { errno: number }).errno).toBe(9);
    } finally {
      closeSync(fd);
    }
    expect(() => writeAll(1, new Uint8Array(1), -1)).toThrow(RangeError);
  });

  it('reserveFdAsync claims the space of a segment off the event loop', async () => {
    const path = join(shm, 'reserved');
    const fd = openSync(path, 'w+');
    try {
      await reserveFdAsync(fd, 5 << 20);
    } finally {
      closeSync(fd);
    }
    const st = statSync(path);
    expect(st.size).toBe(5 << 20);
    // Blocks are allocated now, not on first write (a full tmpfs fails here, not with SIGBUS).
    expect(st.blocks * 512).toBeGreaterThanOrEqual(5 << 20);
    const ro = openSync(path, 'r');
    try {
      const err = await reserveFdAsync(ro, 1 << 20).catch((e: unknown) => e);
      expect((err as { code: string }).code).toBe('EFALLOCATE');
    } finally {
      closeSync(ro);
    }
  });
});
