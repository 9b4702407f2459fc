import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addonPath, mapRangeFd, pageSize } from '@hotweights/shm';
import { afterAll, describe, expect, it } from 'vitest';

// A regular file on the ordinary filesystem (not /dev/shm): what publish maps to hash checkpoints.
const dir = mkdtempSync(join(tmpdir(), 'hw-shm-range-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const MIB = 1024 * 1024;
function pattern(n: number): Buffer {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + (i >>> 12)) & 0xff;
  return b;
}

/** Lines of /proc/self/maps that map `path`. */
function mapsOf(path: string): { start: bigint; offset: bigint }[] {
  return readFileSync('/proc/self/maps', 'utf8')
    .split('\n')
    .filter((l) => l.endsWith(` ${path}`))
    .map((l) => {
      const [range, , offset] = l.split(/\s+/) as [string, string, string];
      return { start: BigInt(`0x${range.split('-')[0]}`), offset: BigInt(`0x${offset}`) };
    });
}

describe('mapRangeFd (read-only ranges of regular files, explicit unmap)', () => {
  const path = join(dir, 'data.bin');
  const data = pattern(7 * MIB + 123);
  writeFileSync(path, data);

  it('views exactly the requested bytes from any offset, and unmap releases them at once', () => {
    const fd = openSync(path, 'r');
    try {
      for (const [offset, length] of [
        [0, 10],
        [pageSize() + 1, 5000],
        [3 * MIB - 7, 4 * MIB + 130],
        [data.length - 1, 1],
      ] as const) {
        const m = mapRangeFd(fd, offset, length, { advice: 'populate' });
        expect(m.view.length).toBe(length);
        expect(Buffer.from(m.view).equals(data.subarray(offset, offset + length))).toBe(true);
        m.unmap();
        // Detached, so nothing can read the pages after they are gone; a second unmap is a no-op.
        expect(m.view.length).toBe(0);
        m.unmap();
        expect(mapsOf(path)).toEqual([]);
      }
      const empty = mapRangeFd(fd, 5, 0);
      expect(empty.view.length).toBe(0);
      empty.unmap();
    } finally {
      closeSync(fd);
    }
  });

  it('places large mappings so address and file offset agree modulo 2 MiB (huge-page mappable)', () => {
    const fd = openSync(path, 'r');
    try {
      for (const offset of [0, 4096, MIB + 8192]) {
        const m = mapRangeFd(fd, offset, 4 * MIB, { advice: 'none' });
        const [line, ...rest] = mapsOf(path);
        expect(rest).toEqual([]);
        expect(line).toBeDefined();
        if (line) expect((line.start - line.offset) % BigInt(2 * MIB)).toBe(0n);
        expect(m.view[0]).toBe(data[offset]);
        m.unmap();
      }
    } finally {
      closeSync(fd);
    }
  });

  it('every advice gives the same bytes; bad offsets and lengths are refused', () => {
    const fd = openSync(path, 'r');
    try {
      for (const advice of ['none', 'populate', 'sequential', 'willneed'] as const) {
        const m = mapRangeFd(fd, 12345, 3 * MIB, { advice });
        expect(Buffer.from(m.view).equals(data.subarray(12345, 12345 + 3 * MIB))).toBe(true);
        m.unmap();
      }
      expect(() => mapRangeFd(fd, -1, 10)).toThrowError(/non-negative integers/);
      expect(() => mapRangeFd(fd, 0, 1.5)).toThrowError(/non-negative integers/);
    } finally {
      closeSync(fd);
    }
  });

  it('addonPath() names the addon file, which a worker thread can load directly', () => {
    const binding = createRequire(import.meta.url)(addonPath()) as {
      mapRange(fd: number, length: number, offset: number, advice: number): ArrayBuffer;
      unmapRange(b: ArrayBuffer): boolean;
    };
    const fd = openSync(path, 'r');
    try {
      const ab = binding.mapRange(fd, 100, 0, 0);
      expect(Buffer.from(ab).equals(data.subarray(0, 100))).toBe(true);
      expect(binding.unmapRange(ab)).toBe(true);
      expect(binding.unmapRange(ab)).toBe(false);
      // Only buffers made by mapRange are ever unmapped.
      expect(binding.unmapRange(new ArrayBuffer(8))).toBe(false);
    } finally {
      closeSync(fd);
    }
  });
});
