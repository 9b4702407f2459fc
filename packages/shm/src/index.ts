/**
 * Zero-copy views of shared-memory files. `mapFile` maps a file (normally a /dev/shm segment) with
 * MAP_SHARED into an external ArrayBuffer: writes through the view land in the file, and other
 * processes that map the same file (another Node rank, Python's mmap/numpy) see the same bytes.
 * The mapping is released when the ArrayBuffer is garbage-collected.
 */
import { closeSync, fstatSync, openSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { lazyAddon } from '@hotweights/native-loader';

/** What native/shm.cc exports. */
export interface ShmBinding {
  map(fd: number, length: number, offset: number, writable: boolean): ArrayBuffer;
  reserve(fd: number, length: number): void;
  mapRange(fd: number, length: number, offset: number, advice: number): ArrayBuffer;
  unmapRange(buffer: ArrayBuffer): boolean;
  writeAll(fd: number, view: Uint8Array, position: number, piece: number): Promise<void>;
  reserveAsync(fd: number, length: number): Promise<void>;
  copyRange(inFd: number, inOffset: number, outFd: number, outOffset: number, length: number): Promise<void>;
  readonly pageSize: number;
}

// Opened on first use, not at import: commands that never map anything never load it.
const addon = lazyAddon<ShmBinding>({
  packageName: '@hotweights/shm',
  root: fileURLToPath(new URL('..', import.meta.url)),
  requires: ['map', 'reserve', 'mapRange', 'unmapRange', 'writeAll', 'reserveAsync', 'copyRange', 'pageSize'],
});

function load(): ShmBinding {
  return addon.load().binding;
}

/**
 * Path of the native addon file this package loads. Worker threads that cannot import this module
 * (an eval'd worker, or TypeScript sources without a loader) `require()` it directly and call
 * `mapRange(fd, length, pageAlignedOffset, advice)` / `unmapRange(buffer)`, as `mapRangeFd` does.
 * Throws the NativeAddonError (places searched, fix) when the addon cannot load.
 */
export function addonPath(): string {
  return addon.load().path;
}

/** True when the addon loads on this machine; `shmUnavailableReason()` says why not. */
export function shmAvailable(): boolean {
  return addon.unavailableReason() === undefined;
}

/** Why the addon cannot load: the places searched, the platform and the fix (undefined when it loads). */
export function shmUnavailableReason(): string | undefined {
  return addon.unavailableReason();
}

/** System page size; map offsets must be multiples of it. */
export function pageSize(): number {
  return load().pageSize;
}

export interface MapOptions {
  /** Bytes to map (default: the whole file from offset; the file must be at least that long). */
  readonly length: number;
  /** Byte offset in the file, a multiple of the page size (default 0). */
  readonly offset?: number;
  /** Map read-write (default true). */
  readonly writable?: boolean;
}

/** A mapping that would reach past the end of its file (touching those bytes raises SIGBUS). */
export class MapBeyondFileError extends RangeError {
  readonly code = 'HW_SHM_BEYOND_EOF';
  override readonly name = 'MapBeyondFileError';
}

/**
 * Refuses a mapping of bytes the file does not have: the kernel would allow it and the first
 * access past the end would kill the process with a bus error instead of an error to catch.
 */
function checkInsideFile(fd: number, offset: number, length: number): void {
  const st = fstatSync(fd);
  if (!st.isFile() || offset + length <= st.size) return;
  throw new MapBeyondFileError(
    `cannot map bytes ${offset}..${offset + length} of a file of ${st.size} bytes: map at most its size, or grow it first (ftruncate, or reserveFd on /dev/shm)`,
  );
}

/** Maps an open file descriptor. The descriptor may be closed afterwards; the mapping stays. */
export function mapFd(fd: number, options: MapOptions): Uint8Array {
  const b = load();
  const offset = options.offset ?? 0;
  if (offset % b.pageSize !== 0) throw new RangeError(`offset ${offset} is not a multiple of ${b.pageSize}`);
  if (options.length === 0) return new Uint8Array(0);
  checkInsideFile(fd, offset, options.length);
  return new Uint8Array(b.map(fd, options.length, offset, options.writable ?? true));
}

/** Opens `path`, maps `length` bytes of it and closes the descriptor. */
export function mapFile(path: string, options: MapOptions): Uint8Array {
  const writable = options.writable ?? true;
  const fd = openSync(path, writable ? 'r+' : 'r');
  try {
    return mapFd(fd, { ...options, writable });
  } finally {
    closeSync(fd);
  }
}

/**
 * Reserves `length` bytes of an open file (posix_fallocate): on tmpfs this claims the pages now,
 * so a full /dev/shm fails here with `code: 'ENOSPC'` rather than as SIGBUS during a later write
 * through a mapping.
 */
export function reserveFd(fd: number, length: number): void {
  load().reserve(fd, length);
}

/** How a read-only range is faulted in: see `mapRangeFd`. */
export type MapAdvice = 'none' | 'populate' | 'sequential' | 'willneed';
const ADVICE: Record<MapAdvice, number> = { none: 0, populate: 1, sequential: 2, willneed: 3 };

export interface MappedRange {
  /** The requested bytes, read-only in effect (the pages are mapped PROT_READ: never write). */
  readonly view: Uint8Array;
  /** Unmaps now (views become empty); safe to call twice. Otherwise GC unmaps it eventually. */
  unmap(): void;
}

/**
 * Maps `length` bytes of an open regular file from any byte `offset` (aligned down to a page
 * internally) read-only, to read a file without copying it. Unlike `mapFd`, the caller releases
 * the mapping explicitly with `unmap()`, so mapping a large file piece by piece keeps memory and
 * address space bounded. `advice`: `populate` faults every page in during the map call
 * (MAP_POPULATE, fewest page faults when the file is in the page cache), `sequential`/`willneed`
 * are madvise hints, `none` faults pages on first touch. The bytes must exist: a file that shrinks
 * under a mapping raises SIGBUS on access, so map only ranges inside the file's current size.
 */
export function mapRangeFd(
  fd: number,
  offset: number,
  length: number,
  options: { readonly advice?: MapAdvice } = {},
): MappedRange {
  const b = load();
  if (!Number.isSafeInteger(offset) || offset < 0 || !Number.isSafeInteger(length) || length < 0)
    throw new RangeError(`offset ${offset} and length ${length} must be non-negative integers`);
  if (length === 0) return { view: new Uint8Array(0), unmap: () => {} };
  checkInsideFile(fd, offset, length);
  const start = offset - (offset % b.pageSize);
  const ab = b.mapRange(fd, length + (offset - start), start, ADVICE[options.advice ?? 'none']);
  return { view: new Uint8Array(ab, offset - start, length), unmap: () => void b.unmapRange(ab) };
}

/**
 * Writes all of `view` to `fd` at `position` with pwrite calls of at most `piece` bytes, in one
 * libuv thread-pool task (one round trip between threads for the whole buffer, however many
 * pieces). The view must stay valid until the promise settles (a mapping: not unmapped). Rejects
 * with `code` ENOSPC, EIO or EWRITE and the `errno`.
 */
export function writeAll(fd: number, view: Uint8Array, position: number, piece = 256 << 10): Promise<void> {
  if (!Number.isSafeInteger(position) || position < 0)
    throw new RangeError(`position ${position} must be a non-negative integer`);
  if (view.byteLength === 0) return Promise.resolve();
  return load().writeAll(fd, view, position, piece);
}

/**
 * `reserveFd` on the libuv thread pool: claiming a large new segment zero-fills its pages, which
 * takes tens of milliseconds per 64 MiB and should not block the event loop. The descriptor must
 * stay open until the promise settles. Rejects with `code: 'ENOSPC'` when shared memory is full.
 */
export function reserveFdAsync(fd: number, length: number): Promise<void> {
  return load().reserveAsync(fd, length);
}

/**
 * Copies `length` bytes from `inFd` at `inOffset` to `outFd` at `outOffset` inside the kernel
 * (copy_file_range: the bytes never pass through this process's memory; a filesystem with
 * reflinks may share them instead), in one libuv thread-pool task. Where the kernel cannot copy
 * between the two files (different filesystem types, an old kernel) the task falls back to
 * pread/pwrite in 256 KiB pieces. Both descriptors must stay open until the promise settles.
 * Rejects with `code` ESHORT (the source ends inside the range), ENOSPC, EIO or ECOPY and the
 * `errno`.
 */
export function copyRange(
  inFd: number,
  inOffset: number,
  outFd: number,
  outOffset: number,
  length: number,
): Promise<void> {
  for (const [name, v] of [
    ['inOffset', inOffset],
    ['outOffset', outOffset],
    ['length', length],
  ] as const)
    if (!Number.isSafeInteger(v) || v < 0)
      throw new RangeError(`${name} ${v} must be a non-negative integer`);
  if (length === 0) return Promise.resolve();
  return load().copyRange(inFd, inOffset, outFd, outOffset, length);
}

export { DirectoryWaiter, joinRendezvous } from './directory-waiter.js';
export {
  type BucketDrop,
  type DropErrors,
  DropExchange,
  type DropExchangeOptions,
} from './drop-exchange.js';
export {
  processAlive,
  registerSharedBytes,
  sharedLocationOf,
  sharedSegmentOf,
  unregisterSharedBytes,
} from './shared-bytes.js';
