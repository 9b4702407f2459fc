/**
 * Shared-memory segments: naming, creation, space checks and reclaiming what crashed runs left.
 * Every segment or directory we create in the staging dir is named
 * `hotweights.p<pid>.<nonce>.<what>` so a later run can tell whose it was and whether the owner
 * is still alive. Mapping goes through @hotweights/shm (zero-copy, shared with other processes);
 * when that addon cannot load, segments are plain files written after landing.
 */
import { randomBytes } from 'node:crypto';
import { constants } from 'node:fs';
import { lstat, open, readdir, readFile, rm, statfs } from 'node:fs/promises';
import { join } from 'node:path';
import { StagingError } from '@hotweights/core';
// Importing @hotweights/shm does not load its addon: that happens on the first call below.
import * as shmModule from '@hotweights/shm';
import { processAlive } from '@hotweights/shm';

export const SEGMENT_PREFIX = 'hotweights.';

export type ShmModule = typeof shmModule;

/** The addon's functions, or null (and the reason in `zeroCopyUnavailableReason`) when it cannot load. */
export async function loadShm(): Promise<ShmModule | null> {
  return shmModule.shmAvailable() ? shmModule : null;
}

/** Why the addon cannot load: the places searched and the fix (undefined when it loads). */
export function zeroCopyUnavailableReason(): string | undefined {
  return shmModule.shmUnavailableReason();
}

/** `p<pid>.<nonce>`: identifies one process's run. */
export function newRunTag(): string {
  return `p${process.pid}.${randomBytes(4).toString('hex')}`;
}

/** A version string made safe for a file name (distinct versions stay distinct). */
export function fileSafe(text: string): string {
  const safe = text.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 48);
  if (safe === text) return safe;
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return `${safe}_${h.toString(16).padStart(8, '0')}`;
}

export function segmentName(run: string, ...parts: string[]): string {
  return `${SEGMENT_PREFIX}${run}.${parts.join('.')}`;
}

export function ownerPid(name: string): number | undefined {
  const m = /^hotweights\.p(\d+)\./.exec(name);
  return m ? Number(m[1]) : undefined;
}

/** Prefix of the rendezvous directories worker agents share for one update. */
export const RENDEZVOUS_PREFIX = 'hw-rdv-';
/** A rendezvous directory with no rank record yet is left alone this long (its ranks may be joining). */
const UNCLAIMED_RENDEZVOUS_MS = 10 * 60 * 1000;

/**
 * Removes what crashed runs left in `dir`: our segments and directories whose owner process is
 * gone (the pid is in the name), and rendezvous directories whose every rank record
 * (`rank.<r>.pid`, written by the local transport) names a dead process. Entries of other users
 * and foreign files are never touched, and one that cannot be removed is skipped, not fatal.
 * Returns the count removed.
 */
export async function reclaimStaleSegments(dir: string): Promise<number> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const name of names) {
    const path = join(dir, name);
    if (!(await isStale(path, name))) continue;
    try {
      const st = await lstat(path);
      // Another user's entry is not ours (and a sticky /dev/shm would refuse to remove it anyway).
      if (process.getuid && st.uid !== process.getuid()) continue;
      await rm(path, { recursive: st.isDirectory(), force: true });
      removed++;
    } catch {
      // Gone meanwhile, or not removable: not ours to fail over.
    }
  }
  return removed;
}

async function isStale(path: string, name: string): Promise<boolean> {
  const pid = ownerPid(name);
  if (pid !== undefined) return pid !== process.pid && !processAlive(pid);
  if (!name.startsWith(RENDEZVOUS_PREFIX)) return false;
  try {
    const st = await lstat(path);
    if (!st.isDirectory()) return false;
    const pids: number[] = [];
    for (const entry of await readdir(path)) {
      if (!/^rank\.\d+\.pid$/.test(entry)) continue;
      const text = await readFile(join(path, entry), 'utf8').catch(() => '');
      if (/^\d+$/.test(text.trim())) pids.push(Number(text.trim()));
    }
    if (pids.length === 0) return Date.now() - st.mtimeMs > UNCLAIMED_RENDEZVOUS_MS;
    return pids.every((p) => p !== process.pid && !processAlive(p));
  } catch {
    return false;
  }
}

function gib(n: number): string {
  return `${(n / 2 ** 30).toFixed(2)} GiB`;
}

/** Throws StagingError (HW_STAGING_NO_SPACE) when `dir` has less than `bytes` free. */
export async function ensureSpace(dir: string, bytes: number, what: string): Promise<void> {
  let free: number;
  try {
    const s = await statfs(dir);
    free = s.bavail * s.bsize;
  } catch (err) {
    throw new StagingError(`staging dir ${dir} is not usable: ${(err as Error).message}`, {
      cause: err,
      details: { dir },
    });
  }
  if (free < bytes) {
    throw new StagingError(
      `not enough shared memory in ${dir} for ${what}: need ${gib(bytes)}, ${gib(free)} free ` +
        '(free space there, or set HOTWEIGHTS_STAGING_DIR to a larger tmpfs)',
      { code: 'HW_STAGING_NO_SPACE', details: { dir, needed: bytes, free } },
    );
  }
}

export interface Segment {
  readonly path: string;
  /** The segment's bytes: a shared mapping, or (without the addon) process memory to flush. */
  readonly bytes: Uint8Array;
  readonly mapped: boolean;
}

/**
 * Creates `path` (exclusively) with room for `size` bytes, claimed up front so a full tmpfs fails
 * here and not half-way through a write.
 */
export async function createSegment(path: string, size: number): Promise<Segment> {
  const mod = await loadShm();
  const fh = await open(path, constants.O_RDWR | constants.O_CREAT | constants.O_EXCL, 0o600);
  try {
    if (size === 0) return { path, bytes: new Uint8Array(0), mapped: mod !== null };
    if (mod) {
      try {
        // Off the event loop when the addon can: zero-filling fresh pages takes a while.
        if (mod.reserveFdAsync) await mod.reserveFdAsync(fh.fd, size);
        else mod.reserveFd(fh.fd, size);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        throw new StagingError(
          `cannot reserve ${gib(size)} for ${path}: ${code === 'ENOSPC' ? 'no space left (shared memory is full)' : (err as Error).message}`,
          {
            cause: err,
            code: code === 'ENOSPC' ? 'HW_STAGING_NO_SPACE' : 'HW_STAGING',
            details: { path, size },
          },
        );
      }
      return { path, bytes: mod.mapFd(fh.fd, { length: size }), mapped: true };
    }
    await fh.truncate(size);
    return { path, bytes: Buffer.allocUnsafeSlow(size), mapped: false };
  } catch (err) {
    await fh.close();
    await rm(path, { force: true });
    throw err;
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Writes an unmapped segment's bytes to its file (a no-op for mapped ones). */
export async function flushSegment(segment: Segment, length = segment.bytes.byteLength): Promise<void> {
  if (segment.mapped || length === 0) return;
  const fh = await open(segment.path, 'r+');
  try {
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await fh.write(segment.bytes, done, Math.min(length - done, 4 << 20), done);
      done += bytesWritten;
    }
  } finally {
    await fh.close();
  }
}

export {
  processAlive,
  registerSharedBytes,
  sharedLocationOf,
  sharedSegmentOf,
  unregisterSharedBytes,
} from '@hotweights/shm';
