/** Binary manifest files mapped read-only (`map: true` loads), with their identity when mapped. */
import { Buffer } from 'node:buffer';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import * as shmModule from '@hotweights/shm';
import { isBinaryManifest } from './manifest-binary.js';

type ShmModule = typeof shmModule;

/** @hotweights/shm loads its addon on this first call, never at import. */
async function shmOrNull(): Promise<ShmModule | null> {
  return shmModule.shmAvailable() ? shmModule : null;
}

/** Identity of a mapped manifest file when it was mapped (see checkManifestFileUnchanged). */
export interface MappedFile {
  readonly path: string;
  readonly dev: bigint;
  readonly ino: bigint;
  readonly size: bigint;
  readonly mtimeNs: bigint;
  readonly ctimeNs: bigint;
}

/** A binary manifest file's bytes as a read-only mapping, or null (not binary, no shm, empty). */
export async function mapManifest(
  path: string,
): Promise<{ bytes: Buffer; file: MappedFile; unmap(): void } | null> {
  const shm = await shmOrNull();
  if (!shm) return null;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return null; // the read that follows reports it
  }
  try {
    const st = fstatSync(fd, { bigint: true });
    if (!st.isFile() || st.size < 8n || st.size > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    const head = Buffer.alloc(8);
    if (readSync(fd, head, 0, 8, 0) !== 8 || !isBinaryManifest(head)) return null;
    const range = shm.mapRangeFd(fd, 0, Number(st.size), { advice: 'populate' });
    const { view } = range;
    return {
      bytes: Buffer.from(view.buffer, view.byteOffset, view.byteLength),
      file: { path, dev: st.dev, ino: st.ino, size: st.size, mtimeNs: st.mtimeNs, ctimeNs: st.ctimeNs },
      unmap: range.unmap,
    };
  } finally {
    closeSync(fd);
  }
}
