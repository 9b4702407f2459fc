/**
 * A verification worker thread (started by verify-pool.ts): hashes an item's chunks, each a range
 * of a staging segment (mapped whole, read-only, and kept mapped across items while staging
 * recycles the segment) or of a file (mapped piece by piece and unmapped at once).
 */
import { closeSync, openSync } from 'node:fs';
import { parentPort, workerData } from 'node:worker_threads';
import {
  type HashAlgorithm,
  hashAlgorithmInfo,
  type ItemHasher,
  unknownHashAlgorithmMessage,
} from '@hotweights/manifest/hash-algorithms';
import { type MappedRange, mapRangeFd } from '@hotweights/shm';

/** A range to hash: of a segment (its file, stable id and whole length), or of a file. */
export interface VerifyChunk {
  readonly path: string;
  readonly id: number;
  readonly size: number;
  readonly offset: number;
  readonly length: number;
  readonly file?: true;
}

export interface VerifyWorkerData {
  /** Segment mappings kept (least recently used ones are unmapped). */
  readonly keep: number;
  /** Largest piece of a file mapped at once. */
  readonly filePiece: number;
}

export interface VerifyRequest {
  readonly id: number;
  readonly algo: HashAlgorithm;
  readonly chunks: readonly VerifyChunk[];
}

export type VerifyReply =
  | { readonly id: number; readonly hex: string }
  | { readonly id: number; readonly error: string };

const port = parentPort;
if (!port) throw new Error('verify-worker.ts runs as a worker thread (see verify-pool.ts)');
const config = workerData as VerifyWorkerData;
/** Segment id -> its whole mapping, least recently used first. */
const kept = new Map<number, MappedRange>();

function segment(c: VerifyChunk): Uint8Array {
  let m = kept.get(c.id);
  kept.delete(c.id);
  if (m && m.view.byteLength < c.offset + c.length) {
    m.unmap();
    m = undefined;
  }
  if (!m) {
    const fd = openSync(c.path, 'r');
    try {
      m = mapRangeFd(fd, 0, c.size);
    } finally {
      closeSync(fd);
    }
  }
  kept.set(c.id, m);
  for (const [id, old] of kept) {
    if (kept.size <= config.keep) break;
    kept.delete(id);
    old.unmap();
  }
  return m.view;
}

function hashFileRange(h: ItemHasher, c: VerifyChunk): void {
  const fd = openSync(c.path, 'r');
  try {
    for (let done = 0; done < c.length; ) {
      const n = Math.min(config.filePiece, c.length - done);
      // Populate: the landed pages are in the page cache, so they map in one call.
      const m = mapRangeFd(fd, c.offset + done, n, { advice: 'populate' });
      try {
        h.update(m.view);
      } finally {
        m.unmap();
      }
      done += n;
    }
  } finally {
    closeSync(fd);
  }
}

port.on('message', ({ id, algo, chunks }: VerifyRequest) => {
  let reply: VerifyReply;
  try {
    const info = hashAlgorithmInfo(algo);
    if (!info) throw new Error(unknownHashAlgorithmMessage(algo));
    const h = info.createHasher();
    for (const c of chunks) {
      if (c.length === 0) continue;
      if (c.file) hashFileRange(h, c);
      else h.update(segment(c).subarray(c.offset, c.offset + c.length));
    }
    reply = { id, hex: h.digestHex() };
  } catch (err) {
    reply = { id, error: (err as Error).message ?? String(err) };
  }
  port.postMessage(reply);
});
