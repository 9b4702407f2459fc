/**
 * Content hashing in worker threads. A task is one file and a list of contiguous byte ranges; the
 * worker streams the span once with positional reads into a reused buffer and feeds each range's
 * hasher, so memory stays at one buffer per worker however large a shard is.
 *
 * The worker body is JavaScript evaluated from a string (not a separate module file) so the same
 * code runs from TypeScript sources (tests, tsx) and from the compiled package; the native hash
 * modules are passed to it as resolved paths.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ConfigError, HASH_HEX_LENGTH, HotweightsError } from '@hotweights/core';

export type HashAlgo = 'blake3' | 'xxh3-64' | 'sha256';
export const HASH_ALGOS: readonly HashAlgo[] = ['blake3', 'xxh3-64', 'sha256'];

export interface HashRange {
  readonly offset: number;
  readonly length: number;
}

export interface HashTask {
  readonly path: string;
  /** Sorted, contiguous ranges (each starts where the previous ended). */
  readonly ranges: readonly HashRange[];
}

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const crypto = require('node:crypto');
const CHUNK = workerData.chunkBytes;
const buf = Buffer.allocUnsafe(CHUNK);
function makeHasher(algo) {
  if (algo === 'blake3') {
    const h = new (require(workerData.blakePath).Blake3Hasher)();
    return { update: (b) => h.update(b), hex: () => h.digest('hex') };
  }
  if (algo === 'xxh3-64') {
    const h = require(workerData.xxhashPath).xxh3.Xxh3.withSeed(0n);
    return { update: (b) => h.update(b), hex: () => h.digest().toString(16).padStart(16, '0') };
  }
  const h = crypto.createHash('sha256');
  return { update: (b) => h.update(b), hex: () => h.digest('hex') };
}
parentPort.on('message', (task) => {
  let fd;
  try {
    fd = fs.openSync(task.path, 'r');
    const hexes = [];
    let pos = task.ranges.length ? task.ranges[0].offset : 0;
    let pendingProgress = 0;
    for (const r of task.ranges) {
      if (r.offset !== pos) throw new Error('ranges are not contiguous at offset ' + r.offset);
      const h = makeHasher(task.algo);
      let left = r.length;
      while (left > 0) {
        const want = Math.min(CHUNK, left);
        const n = fs.readSync(fd, buf, 0, want, pos);
        if (n === 0) throw new Error('unexpected end of file at offset ' + pos + ' (file changed while hashing?)');
        h.update(buf.subarray(0, n));
        pos += n;
        left -= n;
        pendingProgress += n;
        if (pendingProgress >= 64 * 1024 * 1024) {
          parentPort.postMessage({ id: task.id, progress: pendingProgress });
          pendingProgress = 0;
        }
      }
      hexes.push(h.hex());
    }
    parentPort.postMessage({ id: task.id, progress: pendingProgress, hexes });
  } catch (err) {
    parentPort.postMessage({ id: task.id, error: String(err && err.message || err), code: err && err.code });
  } finally {
    if (fd !== undefined) fs.closeSync(fd);
  }
});
`;

interface WorkerReply {
  id: number;
  progress?: number;
  hexes?: string[];
  error?: string;
  code?: string;
}

export interface HashPoolOptions {
  readonly algo: HashAlgo;
  /** Worker threads (default: the machine's available parallelism). */
  readonly threads?: number;
  readonly chunkBytes?: number;
  /** Called with bytes hashed since the last call. */
  readonly onBytes?: (bytes: number) => void;
}

export function checkHashAlgo(algo: string): HashAlgo {
  if (!(HASH_ALGOS as readonly string[]).includes(algo))
    throw new ConfigError(
      `unknown hash algorithm ${JSON.stringify(algo)}: expected one of ${HASH_ALGOS.join(', ')}`,
    );
  if (HASH_HEX_LENGTH[algo] === undefined) throw new ConfigError(`hash ${algo} has no manifest encoding`);
  return algo as HashAlgo;
}

/**
 * Hashes every task's ranges; returns the hex digests per task, in task order. Tasks are handed
 * to whichever worker is free, so big and small files balance across threads.
 */
export async function hashRanges(tasks: readonly HashTask[], options: HashPoolOptions): Promise<string[][]> {
  const algo = checkHashAlgo(options.algo);
  const threads = Math.max(1, Math.min(options.threads ?? availableParallelism(), tasks.length || 1));
  const require = createRequire(import.meta.url);
  const workerData = {
    // Small enough to stay in a core's L2 cache between the read's copy and the hash (as `cat`'s
    // 128 KiB buffer does), large enough that syscalls cost nothing measurable.
    chunkBytes: options.chunkBytes ?? 512 * 1024,
    blakePath: require.resolve('@napi-rs/blake-hash'),
    xxhashPath: require.resolve('@node-rs/xxhash'),
  };
  const results: string[][] = new Array(tasks.length);
  if (tasks.length === 0) return results;
  const workers: Worker[] = [];
  try {
    await new Promise<void>((resolve, reject) => {
      let next = 0;
      let done = 0;
      let failed = false;
      const dispatch = (w: Worker) => {
        if (next >= tasks.length) return;
        const id = next++;
        const t = tasks[id] as HashTask;
        w.postMessage({ id, path: t.path, ranges: t.ranges, algo });
      };
      for (let i = 0; i < threads; i++) {
        const w = new Worker(WORKER_SOURCE, { eval: true, workerData });
        workers.push(w);
        w.on('message', (m: WorkerReply) => {
          if (failed) return;
          if (m.progress) options.onBytes?.(m.progress);
          if (m.error !== undefined) {
            failed = true;
            const t = tasks[m.id] as HashTask;
            reject(
              new HotweightsError('HW_CHECKPOINT', `cannot hash ${t.path}: ${m.error}`, {
                details: { file: t.path },
              }),
            );
            return;
          }
          if (m.hexes) {
            results[m.id] = m.hexes;
            done++;
            if (done === tasks.length) resolve();
            else dispatch(w);
          }
        });
        w.on('error', (err) => {
          if (!failed) {
            failed = true;
            reject(new HotweightsError('HW_INTERNAL', `hash worker failed: ${err.message}`, { cause: err }));
          }
        });
        dispatch(w);
      }
    });
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
