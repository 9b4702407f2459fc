/**
 * Which shared-memory segment a view of memory belongs to, and whether a segment's owner lives.
 * Host staging records each mapping it makes; a transport handed a staged bucket's bytes asks
 * where they live, so it can tell other processes on the host instead of copying them again.
 * Pure bookkeeping: no native code, so it works where the addon does not load.
 */

/** True while process `pid` exists (EPERM: it exists but belongs to someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

// Mapped segments by their memory, so a transport handed a staged bucket's bytes can tell other
// processes on the host where those bytes already are instead of copying them again.
const sharedPaths = new WeakMap<ArrayBufferLike, string>();
// A number per mapping that stays the same while its file is renamed (a segment recycled for
// another bucket is the same memory): worker threads keep their own mapping of it by this id.
const sharedIds = new WeakMap<ArrayBufferLike, number>();
let nextSharedId = 1;

/** Records that `bytes` (a whole mapping) is the content of the segment file `path`. */
export function registerSharedBytes(bytes: Uint8Array, path: string): void {
  if (bytes.byteLength === 0) return;
  sharedPaths.set(bytes.buffer, path);
  if (!sharedIds.has(bytes.buffer)) sharedIds.set(bytes.buffer, nextSharedId++);
}

export function unregisterSharedBytes(bytes: Uint8Array): void {
  sharedPaths.delete(bytes.buffer);
}

/**
 * Like `sharedLocationOf`, plus the mapping's id (stable across renames, never reused in this
 * process) and its whole length, for a worker that maps the segment once and keeps it.
 */
export function sharedSegmentOf(
  view: Uint8Array,
): { path: string; offset: number; id: number; size: number } | undefined {
  const path = sharedPaths.get(view.buffer);
  const id = sharedIds.get(view.buffer);
  if (path === undefined || id === undefined) return undefined;
  return { path, offset: view.byteOffset, id, size: view.buffer.byteLength };
}

/** Where `view`'s bytes live in a shared segment file, when they do. */
export function sharedLocationOf(view: Uint8Array): { path: string; offset: number } | undefined {
  const path = sharedPaths.get(view.buffer);
  return path === undefined ? undefined : { path, offset: view.byteOffset };
}
