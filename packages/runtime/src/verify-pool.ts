/**
 * Item hashing for verification on worker threads, so the main thread keeps driving reads and
 * writes while buckets are hashed (and several buckets hash at once). Staged bytes live in
 * shared-memory segment files: a worker is told the segment (its path and a stable id) and the
 * byte range, maps the whole segment read-only itself (no copy, nothing transferred) and keeps
 * that mapping while staging recycles the segment for later buckets, so its pages are faulted in
 * once per run, not once per item. A few mappings are kept per worker (least recently used ones
 * are unmapped at once). Bytes that are not in a mapped segment (the addon is missing, or a
 * staging agent without segments) are hashed on the calling thread.
 *
 * The workers run verify-worker.ts.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import {
  createItemHasher,
  type HashAlgorithm,
  hashAlgorithmInfo,
  siblingModule,
  startModuleWorker,
} from '@hotweights/manifest';
import { loadShm, sharedSegmentOf } from './shm-segment.js';
import type { VerifyChunk, VerifyReply, VerifyRequest, VerifyWorkerData } from './verify-worker.js';

/**
 * Bytes of a file to hash in place (an item that landed straight in a target file): hashed
 * through short-lived read-only mappings, never copied.
 */
export interface FileRange {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
}

/** What gets hashed: bytes in memory, or a range of a file. */
export type HashInput = Uint8Array | FileRange;

function isFileRange(c: HashInput): c is FileRange {
  return !(c instanceof Uint8Array);
}

/** Largest piece of a file mapped at once while hashing it (bounds address space per worker). */
const FILE_PIECE = 32 << 20;

/** Segment mappings each worker keeps (a window's worth; older ones are unmapped). */
const KEPT_MAPPINGS = 8;

interface Pending {
  resolve(hex: string): void;
  reject(err: Error): void;
}

const VERIFY_WORKER = siblingModule('verify-worker', import.meta.url);

/** The workers' settings, or undefined when the shm addon is not available here. */
async function workerData(): Promise<VerifyWorkerData | undefined> {
  try {
    return (await loadShm()) ? { keep: KEPT_MAPPINGS, filePiece: FILE_PIECE } : undefined;
  } catch {
    return undefined;
  }
}

/** A pool started ahead of an update (`VerifyPool.warm`), for the next `create` of its size. */
let warmed: { threads: number; pool: Promise<VerifyPool | undefined> } | undefined;

export class VerifyPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { algo: HashAlgorithm; chunks: VerifyChunk[]; pending: Pending }[] = [];
  private readonly inflight = new Map<Worker, Pending>();
  private nextId = 0;
  private closed = false;

  private constructor(threads: number, data: VerifyWorkerData) {
    for (let i = 0; i < threads; i++) {
      const w = startModuleWorker(VERIFY_WORKER, { workerData: data });
      w.on('message', (msg: VerifyReply) => {
        const p = this.inflight.get(w);
        this.inflight.delete(w);
        if (p) {
          if ('error' in msg) p.reject(new Error(`hash worker: ${msg.error}`));
          else p.resolve(msg.hex);
        }
        // An idle worker must not keep the process alive; a busy one must (see pump).
        w.unref();
        this.idle.push(w);
        this.pump();
      });
      w.on('error', (err) => {
        this.inflight.get(w)?.reject(err);
        this.inflight.delete(w);
        w.unref();
      });
      w.unref();
      this.workers.push(w);
      this.idle.push(w);
    }
  }

  /**
   * A pool of `threads` workers (default: one per core), or undefined when workers could not map
   * segments here (then callers hash on their own thread).
   */
  static async create(threads = availableParallelism()): Promise<VerifyPool | undefined> {
    if (warmed?.threads === threads) {
      const { pool } = warmed;
      warmed = undefined;
      return pool;
    }
    const data = await workerData();
    return data ? new VerifyPool(Math.max(1, threads), data) : undefined;
  }

  /**
   * Starts a pool of `threads` workers now, for the next `create(threads)` in this process to take:
   * a worker takes ~0.1 s to load, which the first landed bucket would otherwise wait for, and a
   * rank can start them while it still finds its transport and meets the others. Idle workers do
   * not keep the process alive, so a pool nobody takes costs nothing at exit.
   */
  static warm(threads = availableParallelism()): Promise<VerifyPool | undefined> {
    if (warmed?.threads !== threads) {
      const previous = warmed?.pool;
      warmed = { threads, pool: VerifyPool.create(threads) };
      void previous?.then((p) => p?.close());
    }
    return warmed.pool;
  }

  /**
   * Hex digest of `chunks` in order: on a worker when every chunk is a file range or in a mapped
   * segment, else on this thread.
   */
  hash(algo: HashAlgorithm, chunks: readonly HashInput[]): Promise<string> {
    if (!hashAlgorithmInfo(algo)?.workerThreads) return Promise.resolve(hashHere(algo, chunks));
    const located: VerifyChunk[] = [];
    for (const c of chunks) {
      if (isFileRange(c)) {
        if (c.length > 0) located.push({ ...c, id: 0, size: 0, file: true });
        continue;
      }
      const at = c.byteLength > 0 ? sharedSegmentOf(c) : undefined;
      if (c.byteLength > 0 && !at) return Promise.resolve(hashHere(algo, chunks));
      if (at) located.push({ ...at, length: c.byteLength });
    }
    if (this.closed) return Promise.resolve(hashHere(algo, chunks));
    return new Promise<string>((resolve, reject) => {
      this.queue.push({ algo, chunks: located, pending: { resolve, reject } });
      this.pump();
    });
  }

  private pump(): void {
    while (this.idle.length > 0 && this.queue.length > 0) {
      const w = this.idle.pop() as Worker;
      const job = this.queue.shift() as (typeof this.queue)[number];
      this.inflight.set(w, job.pending);
      w.ref();
      const request: VerifyRequest = { id: this.nextId++, algo: job.algo, chunks: job.chunks };
      w.postMessage(request);
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const job of this.queue.splice(0)) job.pending.reject(new Error('hash pool closed'));
    await Promise.all(this.workers.map((w) => w.terminate()));
  }
}

/** Hashes on the calling thread (file ranges are read in pieces). */
export function hashHere(algo: HashAlgorithm, chunks: readonly HashInput[]): string {
  const h = createItemHasher(algo);
  for (const c of chunks) {
    if (!isFileRange(c)) {
      h.update(c);
      continue;
    }
    if (c.length === 0) continue;
    const fd = openSync(c.path, 'r');
    try {
      for (let done = 0; done < c.length; ) {
        const buf = Buffer.allocUnsafe(Math.min(c.length - done, 8 << 20));
        const n = readSync(fd, buf, 0, buf.length, c.offset + done);
        if (n === 0) throw new Error(`${c.path} ends at ${c.offset + done}, inside the range to hash`);
        h.update(buf.subarray(0, n));
        done += n;
      }
    } finally {
      closeSync(fd);
    }
  }
  return h.digestHex();
}
