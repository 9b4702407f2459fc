import { execFileSync } from 'node:child_process';
import {
  closeSync,
  ftruncateSync,
  mkdtempSync,
  openSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import { mapFile, pageSize, reserveFd, shmAvailable } from '@hotweights/shm';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join('/dev/shm', 'hw-shm-test-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('@hotweights/shm', { timeout: 30_000 }, () => {
  it('loads the addon on this machine', () => {
    expect(shmAvailable()).toBe(true);
    expect(pageSize()).toBeGreaterThanOrEqual(4096);
  });

  it('writes through a mapping land in the file and another process sees them', () => {
    const path = join(dir, 'seg');
    const fd = openSync(path, 'w+');
    ftruncateSync(fd, 1 << 20);
    closeSync(fd);
    const view = mapFile(path, { length: 1 << 20 });
    for (let i = 0; i < view.length; i++) view[i] = (i * 7) & 0xff;
    const onDisk = readFileSync(path);
    expect(Buffer.compare(onDisk, Buffer.from(view.buffer, view.byteOffset, view.length))).toBe(0);
    // Another process (Python's mmap, as the vLLM extension will use) reads the same bytes.
    const sum = execFileSync('python3', [
      '-c',
      'import mmap,sys\nf=open(sys.argv[1],"r+b")\nm=mmap.mmap(f.fileno(),0)\nprint(sum(m[:4096]))\nm[0]=123\nm.close()',
      path,
    ]).toString();
    let expected = 0;
    for (let i = 0; i < 4096; i++) expected += (i * 7) & 0xff;
    expect(Number(sum.trim())).toBe(expected);
    // ...and its write is visible through our mapping without re-reading.
    expect(view[0]).toBe(123);
  });

  it('maps at a page-aligned offset read-only and rejects a misaligned one', () => {
    const path = join(dir, 'seg2');
    const data = Buffer.alloc(3 * 4096);
    data.fill(9, 4096);
    writeFileSync(path, data);
    const view = mapFile(path, { length: 4096, offset: 4096, writable: false });
    expect(view.every((b) => b === 9)).toBe(true);
    expect(() => mapFile(path, { length: 10, offset: 100 })).toThrowError(/multiple/);
  });
});

describe('reserveFd', () => {
  it('claims space up front and reports ENOSPC on a full filesystem', () => {
    const path = join(dir, 'reserved');
    const fd = openSync(path, 'w+');
    try {
      reserveFd(fd, 1 << 16);
      expect(statSync(path).size).toBe(1 << 16);
      // Larger than any tmpfs here: must fail cleanly, with the code the staging layer maps.
      let code: unknown;
      try {
        reserveFd(fd, 2 ** 50);
      } catch (err) {
        code = (err as NodeJS.ErrnoException).code;
      }
      expect(['ENOSPC', 'EFALLOCATE']).toContain(code);
    } finally {
      closeSync(fd);
    }
  });
});
