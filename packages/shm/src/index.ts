/**
 * Zero-copy views of shared-memory files. `mapFile` maps a file (normally a /dev/shm segment) with
 * MAP_SHARED into an external ArrayBuffer: writes through the view land in the file, and other
 * processes that map the same file (another Node rank, Python's mmap/numpy) see the same bytes.
 * The mapping is released when the ArrayBuffer is garbage-collected.
 */
import { closeSync, openSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

interface Binding {
  map(fd: number, length: number, offset: number, writable: boolean): ArrayBuffer;
  reserve(fd: number, length: number): void;
  readonly pageSize: number;
}

const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

let binding: Binding | undefined;
let loadError: Error | undefined;

function load(): Binding {
  if (binding) return binding;
  if (loadError) throw loadError;
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => Binding;
    binding = nodeGypBuild(PACKAGE_ROOT);
    return binding;
  } catch (err) {
    loadError = new Error(`@hotweights/shm: native addon not loadable: ${(err as Error).message}`, {
      cause: err,
    });
    throw loadError;
  }
}

/** True when the addon loads on this machine; `shmUnavailableReason()` says why not. */
export function shmAvailable(): boolean {
  try {
    load();
    return true;
  } catch {
    return false;
  }
}

export function shmUnavailableReason(): string | undefined {
  try {
    load();
    return undefined;
  } catch (err) {
    return (err as Error).message;
  }
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

/** Maps an open file descriptor. The descriptor may be closed afterwards; the mapping stays. */
export function mapFd(fd: number, options: MapOptions): Uint8Array {
  const b = load();
  const offset = options.offset ?? 0;
  if (offset % b.pageSize !== 0) throw new RangeError(`offset ${offset} is not a multiple of ${b.pageSize}`);
  if (options.length === 0) return new Uint8Array(0);
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
