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
 * The worker body is JavaScript evaluated from a string, so the same code runs from TypeScript
 * sources (tests, tsx) and from the compiled package; native modules are passed as resolved paths.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { createItemHasher, type HashAlgorithm } from '@hotweights/manifest';
import { loadShm, sharedSegmentOf } from './shm-segment.js';

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

interface Chunk {
  /** The segment: its file, its id (stable while recycled) and its whole length; or file: a FileRange. */
  readonly path: string;
  readonly id: number;
  readonly size: number;
  readonly offset: number;
  readonly length: number;
  readonly file?: true;
}

/** Largest piece of a file mapped at once while hashing it (bounds address space per worker). */
const FILE_PIECE = 32 << 20;

/** Segment mappings each worker keeps (a window's worth; older ones are unmapped). */
const KEPT_MAPPINGS = 8;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const shm = require(workerData.shmAddon);
const kept = new Map(); // segment id -> ArrayBuffer of the whole segment, least recent first
function segment(c) {
  let ab = kept.get(c.id);
  if (ab && ab.byteLength >= c.offset + c.length) {
    kept.delete(c.id);
    kept.set(c.id, ab);
    return ab;
  }
  if (ab) shm.unmapRange(ab);
  const fd = fs.openSync(c.path, 'r');
  try {
    ab = shm.mapRange(fd, c.size, 0, 0);
  } finally {
    fs.closeSync(fd);
  }
  kept.delete(c.id);
  kept.set(c.id, ab);
  while (kept.size > workerData.keep) {
    const [id, old] = kept.entries().next().value;
    kept.delete(id);
    shm.unmapRange(old);
  }
  return ab;
}
const { Blake3Hasher } = require(workerData.blake);
const { xxh3 } = require(workerData.xxhash);
function hasher(algo) {
  if (algo === 'blake3') {
    const h = new Blake3Hasher();
    return { update: (b) => h.update(b), hex: () => h.digest('hex') };
  }
  if (algo === 'xxh3-64') {
    const h = xxh3.Xxh3.withSeed();
    return { update: (b) => h.update(b), hex: () => h.digest().toString(16).padStart(16, '0') };
  }
  if (algo === 'xxh3-128') {
    const parts = [];
    return {
      update: (b) => parts.push(Buffer.from(b)),
      hex: () => xxh3.xxh128(parts.length === 1 ? parts[0] : Buffer.concat(parts)).toString(16).padStart(32, '0'),
    };
  }
  const h = crypto.createHash('sha256');
  return { update: (b) => h.update(b), hex: () => h.digest('hex') };
}
const page = shm.pageSize;
function hashFileRange(h, c) {
  const fd = fs.openSync(c.path, 'r');
  try {
    for (let done = 0; done < c.length; ) {
      const at = c.offset + done;
      const start = at - (at % page);
      const n = Math.min(workerData.filePiece, c.length - done);
      // MAP_POPULATE: the landed pages are in the page cache, so they map in one call.
      const ab = shm.mapRange(fd, n + (at - start), start, 1);
      try {
        h.update(Buffer.from(ab, at - start, n));
      } finally {
        shm.unmapRange(ab);
      }
      done += n;
    }
  } finally {
    fs.closeSync(fd);
  }
}
parentPort.on('message', ({ id, algo, chunks }) => {
  try {
    const h = hasher(algo);
    for (const c of chunks) {
      if (c.length === 0) continue;
      if (c.file) hashFileRange(h, c);
      else h.update(Buffer.from(segment(c), c.offset, c.length));
    }
    parentPort.postMessage({ id, hex: h.hex() });
  } catch (err) {
    parentPort.postMessage({ id, error: String((err && err.message) || err) });
  }
});
`;

interface Pending {
  resolve(hex: string): void;
  reject(err: Error): void;
}

/** What the worker loads, or undefined when the shm addon is not available here. */
async function workerData(): Promise<Record<string, string | number> | undefined> {
  try {
    const shm = await loadShm();
    if (!shm) return undefined;
    const require = createRequire(import.meta.url);
    return {
      shmAddon: shm.addonPath(),
      blake: require.resolve('@napi-rs/blake-hash'),
      xxhash: require.resolve('@node-rs/xxhash'),
      keep: KEPT_MAPPINGS,
      filePiece: FILE_PIECE,
    };
  } catch {
    return undefined;
  }
}

export class VerifyPool {
  private readonly workers: Worker[] = [];
  private readonly idle: Worker[] = [];
  private readonly queue: { algo: HashAlgorithm; chunks: Chunk[]; pending: Pending }[] = [];
  private readonly inflight = new Map<Worker, Pending>();
  private nextId = 0;
  private closed = false;

  private constructor(threads: number, modules: Record<string, string | number>) {
    for (let i = 0; i < threads; i++) {
      const w = new Worker(WORKER_SOURCE, { eval: true, workerData: modules });
      w.on('message', (msg: { hex?: string; error?: string }) => {
        const p = this.inflight.get(w);
        this.inflight.delete(w);
        if (p) {
          if (msg.error !== undefined) p.reject(new Error(`hash worker: ${msg.error}`));
          else p.resolve(msg.hex as string);
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
    const data = await workerData();
    return data ? new VerifyPool(Math.max(1, threads), data) : undefined;
  }

  /**
   * Hex digest of `chunks` in order: on a worker when every chunk is a file range or in a mapped
   * segment, else on this thread.
   */
  hash(algo: HashAlgorithm, chunks: readonly HashInput[]): Promise<string> {
    const located: Chunk[] = [];
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
      w.postMessage({ id: this.nextId++, algo: job.algo, chunks: job.chunks });
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
        // A new buffer per piece: a hasher may keep the pieces it was given (xxh3-128 does).
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
