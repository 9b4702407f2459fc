import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { copyRange } from '@hotweights/shm';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'hw-shm-copy-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-shm-copy-'));
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

describe('copyRange', { timeout: 30_000 }, () => {
  const bytes = randomBytes(40_000_003);
  const src = join(dir, 'src.bin');
  writeFileSync(src, bytes);

  for (const [where, base] of [
    ['into a file on the same filesystem', dir],
    ['into /dev/shm (another filesystem type)', shm],
  ] as const) {
    it(`copies a byte range ${where}, byte-exact, leaving the rest of the target as it was`, async () => {
      const out = join(base, 'out.bin');
      writeFileSync(out, Buffer.alloc(20_000_000, 0x5a));
      const a = openSync(src, 'r');
      const b = openSync(out, 'r+');
      try {
        // More than one 16 MiB kernel call, unaligned on both sides.
        await copyRange(a, 12_345, b, 999, 18_000_001);
        await copyRange(a, 0, b, 0, 0);
      } finally {
        closeSync(a);
        closeSync(b);
      }
      const got = readFileSync(out);
      expect(got.length).toBe(20_000_000);
      expect(got.subarray(0, 999).every((x) => x === 0x5a)).toBe(true);
      expect(
        Buffer.compare(got.subarray(999, 999 + 18_000_001), bytes.subarray(12_345, 12_345 + 18_000_001)),
      ).toBe(0);
      expect(got.subarray(999 + 18_000_001).every((x) => x === 0x5a)).toBe(true);
    });
  }

  it('rejects with ESHORT when the source ends inside the range, and RangeError on bad offsets', async () => {
    const a = openSync(src, 'r');
    const b = openSync(join(dir, 'short.bin'), 'w');
    try {
      await expect(copyRange(a, bytes.length - 10, b, 0, 11)).rejects.toMatchObject({ code: 'ESHORT' });
      expect(() => copyRange(a, -1, b, 0, 1)).toThrow(RangeError);
      expect(() => copyRange(a, 0, b, 0.5, 1)).toThrow(/outOffset/);
    } finally {
      closeSync(a);
      closeSync(b);
    }
  });
});
