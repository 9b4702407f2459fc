/**
 * Writing a buffer (usually a verified bucket's staged segment) into a file at a position. The
 * kernel sizes a new file's page-cache folios by the write, and on this machine kind large folios
 * come from memory handed back to the host, whose first touch is slow: writing 2 GiB of new files
 * took ~1.1 s in 256 KiB writes against ~4-6 s in 1-4 MiB ones (cp: 0.9 s). So writes go in
 * 256 KiB pieces; with @hotweights/shm all pieces of one buffer are written in one thread-pool
 * task (one round trip between threads instead of one per piece).
 */
import type { FileHandle } from 'node:fs/promises';
import { loadShm } from './shm-segment.js';

export const WRITE_PIECE = 256 << 10;

export async function writeAllAt(fh: FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  if (bytes.byteLength === 0) return;
  const shm = await loadShm();
  if (shm) return shm.writeAll(fh.fd, bytes, position, WRITE_PIECE);
  let done = 0;
  while (done < bytes.byteLength) {
    const n = Math.min(bytes.byteLength - done, WRITE_PIECE);
    const { bytesWritten } = await fh.write(bytes, done, n, position + done);
    done += bytesWritten;
  }
}

/**
 * Where a range is split so a filesystem with reflinks (XFS, Btrfs) can share its extents: the
 * kernel's copy_file_range clones only from a block-aligned start and copies the whole call
 * otherwise (measured on XFS: a 64 MiB range starting 1000 bytes into a block shared nothing; one
 * starting on a block boundary shared all but its unaligned last block). 64 KiB is a multiple of
 * every common block size (4-64 KiB), so at most 128 KiB of a range is copied rather than shared.
 */
export const SHARE_ALIGN = 64 << 10;

/**
 * The pieces [start within the range, length] a range is copied in: the unaligned head, the
 * aligned interior (shared where the filesystem can) and the unaligned tail, when both offsets
 * sit at the same place within SHARE_ALIGN; else the whole range (nothing could be shared).
 */
export function sharePieces(fromOffset: number, toOffset: number, length: number): [number, number][] {
  if (length === 0) return [];
  if ((fromOffset - toOffset) % SHARE_ALIGN !== 0) return [[0, length]];
  const head = Math.min(length, (SHARE_ALIGN - (toOffset % SHARE_ALIGN)) % SHARE_ALIGN);
  const end = toOffset + length;
  const interior = Math.max(0, end - (end % SHARE_ALIGN) - (toOffset + head));
  const tail = length - head - interior;
  const pieces: [number, number][] = [];
  if (head > 0) pieces.push([0, head]);
  if (interior > 0) pieces.push([head, interior]);
  if (tail > 0) pieces.push([head + interior, tail]);
  return pieces;
}

/**
 * Copies `length` bytes of one open file into another inside the kernel (copy_file_range through
 * @hotweights/shm: the bytes never pass through this process, as `cp` copies; split by
 * sharePieces so that on a filesystem with reflinks the aligned interior is a clone, copy-on-write,
 * and costs no bytes), or through a buffer when the addon is missing. Rejects with
 * `code: 'ESHORT'` when the source ends inside the range.
 */
export async function copyFileRange(
  from: FileHandle,
  fromOffset: number,
  to: FileHandle,
  toOffset: number,
  length: number,
): Promise<void> {
  if (length === 0) return;
  const shm = await loadShm();
  if (shm) {
    for (const [at, n] of sharePieces(fromOffset, toOffset, length))
      await shm.copyRange(from.fd, fromOffset + at, to.fd, toOffset + at, n);
    return;
  }
  const buf = Buffer.allocUnsafe(Math.min(length, WRITE_PIECE));
  for (let done = 0; done < length; ) {
    const { bytesRead } = await from.read(buf, 0, Math.min(buf.length, length - done), fromOffset + done);
    if (bytesRead === 0)
      throw Object.assign(new Error('the source file ends before the range'), { code: 'ESHORT' });
    await writeAllAt(to, buf.subarray(0, bytesRead), toOffset + done);
    done += bytesRead;
  }
}
