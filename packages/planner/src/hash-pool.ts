/**
 * Content hashing on every core. A task is one file and a list of contiguous byte ranges (one per
 * manifest entry); each range gets its own hash.
 *
 * Hashers read straight out of the page cache through read-only memory maps (`@hotweights/shm`),
 * piece by piece (at most `pieceBytes` mapped per thread, unmapped as soon as it is hashed), so a
 * core spends its time hashing rather than copying. Mappings are placed so a file the page cache
 * holds in 2 MiB folios is mapped with huge-page entries, nearly free to fault in (smaller folios
 * cost about what a read() copy costs). Without the addon, for small files, or with `io: 'read'`,
 * ranges are streamed with positional reads into one reused buffer. Either way memory stays
 * bounded per thread however large a shard or a tensor is.
 *
 * The hashing code is JavaScript evaluated from a string (not a separate module file) so the same
 * code runs in worker threads and on the main thread, from TypeScript sources (tests, tsx) and
 * from the compiled package; the native modules are passed to it as resolved paths.
 */
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { ConfigError, HotweightsError } from '@hotweights/core';
import { type HashAlgorithm, hashAlgorithmInfo, unknownHashAlgorithmMessage } from '@hotweights/manifest';

/** How workers get file bytes: memory maps (default when the shm addon loads) or read() copies. */
export type HashIo = 'mmap' | 'read';

export interface HashRange {
  readonly offset: number;
  readonly length: number;
}

export interface HashTask {
  readonly path: string;
  /** Sorted, contiguous ranges (each starts where the previous ended). */
  readonly ranges: readonly HashRange[];
}

/**
 * The hashing itself, shared by the worker threads and the main thread: JavaScript source that
 * defines `runTask(task)`, a generator that hashes a task's ranges, yields the bytes it hashed
 * after every slice and returns the hex digests. It expects `require` and `workerData` in scope.
 */
const RUNNER_SOURCE = `
const fs = require('node:fs');
const crypto = require('node:crypto');
const shm = workerData.shmAddonPath ? require(workerData.shmAddonPath) : null;
const PIECE = workerData.pieceBytes;
// One update() call hashes at most this much, so a thread that yields between slices (the main
// thread) stays responsive even inside a multi-GB tensor.
const SLICE = 8 * 1024 * 1024;
const SMALL = 256 * 1024;
let buf = null;
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
function shrank(size, end) {
  return new Error('file is ' + size + ' bytes but entries end at byte ' + end + ' (file changed while hashing?)');
}
// Views of [lo, hi) through one mapping that runs to the next piece boundary (or the task's end),
// so consecutive small ranges share a mapping and a huge range is hashed piece by piece.
function mappedReader(fd, end) {
  let ab = null, view = null, mapLo = 0, mapHi = 0;
  const release = () => { if (ab) shm.unmapRange(ab); ab = null; view = null; };
  return {
    view(lo, hi) {
      if (view === null || lo < mapLo || hi > mapHi) {
        release();
        // A file that shrank under a mapping would raise SIGBUS on access: check before mapping.
        const size = fs.fstatSync(fd).size;
        mapHi = Math.min(end, (Math.floor(lo / PIECE) + 1) * PIECE);
        if (size < mapHi) throw shrank(size, mapHi);
        mapLo = lo - (lo % shm.pageSize);
        // Fault pages in on first touch: the kernel's fault-around maps a warm large folio's pages
        // in batches, measured cheaper here than MAP_POPULATE, which walks page by page.
        ab = shm.mapRange(fd, mapHi - mapLo, mapLo, 0);
        view = new Uint8Array(ab);
      }
      return view.subarray(lo - mapLo, hi - mapLo);
    },
    sliceEnd(pos, rangeEnd) {
      return Math.min(rangeEnd, pos + SLICE, (Math.floor(pos / PIECE) + 1) * PIECE);
    },
    release,
  };
}
function readReader(fd) {
  if (buf === null) buf = Buffer.allocUnsafe(workerData.chunkBytes);
  return {
    view(lo, hi) {
      const n = fs.readSync(fd, buf, 0, hi - lo, lo);
      if (n !== hi - lo) throw shrank(fs.fstatSync(fd).size, hi);
      return buf.subarray(0, n);
    },
    sliceEnd(pos, rangeEnd) { return Math.min(rangeEnd, pos + buf.length); },
    release() {},
  };
}
function* runTask(task) {
  const fd = fs.openSync(task.path, 'r');
  let reader;
  try {
    const ranges = task.ranges;
    const last = ranges[ranges.length - 1];
    const end = last ? last.offset + last.length : 0;
    const start = ranges.length ? ranges[0].offset : 0;
    // A small file (config, tokenizer) costs less to read than to map, fault in and unmap.
    reader = task.io === 'mmap' && shm && end - start >= SMALL ? mappedReader(fd, end) : readReader(fd);
    const hexes = [];
    let pos = ranges.length ? ranges[0].offset : 0;
    for (const r of ranges) {
      if (r.offset !== pos) throw new Error('ranges are not contiguous at offset ' + r.offset);
      const h = makeHasher(task.algo);
      const rangeEnd = r.offset + r.length;
      while (pos < rangeEnd) {
        const stop = reader.sliceEnd(pos, rangeEnd);
        h.update(reader.view(pos, stop));
        yield stop - pos;
        pos = stop;
      }
      hexes.push(h.hex());
    }
    return hexes;
  } finally {
    if (reader) reader.release();
    fs.closeSync(fd);
  }
}
`;

const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
${RUNNER_SOURCE}
const PROGRESS_EVERY = 64 * 1024 * 1024;
parentPort.postMessage({ ready: true });
parentPort.on('message', (task) => {
  try {
    const it = runTask(task);
    let pendingProgress = 0;
    for (;;) {
      const step = it.next();
      if (step.done) {
        parentPort.postMessage({ id: task.id, progress: pendingProgress, hexes: step.value });
        return;
      }
      pendingProgress += step.value;
      if (pendingProgress >= PROGRESS_EVERY) {
        parentPort.postMessage({ id: task.id, progress: pendingProgress });
        pendingProgress = 0;
      }
    }
  } catch (err) {
    parentPort.postMessage({ id: task.id, error: String(err && err.message || err), code: err && err.code });
  }
});
`;

type RunTask = (task: WireTask) => Generator<number, string[], void>;

/** The runner compiled on the main thread, once per hashRanges call (its workerData differs). */
function mainRunner(require: NodeJS.Require, workerData: WorkerData): RunTask {
  return new Function('require', 'workerData', `${RUNNER_SOURCE}\nreturn runTask;`)(
    require,
    workerData,
  ) as RunTask;
}

interface WorkerData {
  readonly chunkBytes: number;
  readonly pieceBytes: number;
  readonly shmAddonPath: string | null;
  readonly blakePath: string;
  readonly xxhashPath: string;
}

interface WireTask {
  readonly id: number;
  readonly path: string;
  readonly ranges: readonly HashRange[];
  readonly algo: HashAlgorithm;
  readonly io: HashIo;
}

interface WorkerReply {
  ready?: boolean;
  id: number;
  progress?: number;
  hexes?: string[];
  error?: string;
  code?: string;
}

export interface HashPoolOptions {
  readonly algo: HashAlgorithm;
  /** Hashing threads, the main thread included (default: the machine's available parallelism). */
  readonly threads?: number;
  /** read() buffer size when reading (io 'read'). */
  readonly chunkBytes?: number;
  /** Most bytes a worker keeps mapped at once (io 'mmap'); a multiple of 2 MiB. */
  readonly pieceBytes?: number;
  /** 'mmap' (default; falls back to 'read' when the shm addon does not load) or 'read'. */
  readonly io?: HashIo;
  /**
   * Hash on the main thread too (default true), in slices between which the event loop runs; false
   * leaves every task to `threads` worker threads and the event loop free.
   */
  readonly mainThread?: boolean;
  /** Called with bytes hashed since the last call. */
  readonly onBytes?: (bytes: number) => void;
}

/** The algorithm, checked against the one table (@hotweights/manifest's hash-algorithms). */
export function checkHashAlgo(algo: string): HashAlgorithm {
  const info = hashAlgorithmInfo(algo);
  if (!info) throw new ConfigError(unknownHashAlgorithmMessage(algo));
  return info.name;
}

/** The I/O mode hashing will use, and why it is not mmap when it is not. */
export interface ResolvedHashIo {
  readonly io: HashIo;
  /** The shm addon file workers load (io 'mmap'). */
  readonly addonPath: string | null;
  readonly reason?: string;
}

export async function resolveHashIo(wanted: HashIo = 'mmap'): Promise<ResolvedHashIo> {
  if (wanted === 'read') return { io: 'read', addonPath: null, reason: 'read() requested' };
  try {
    const shm = await import('@hotweights/shm');
    if (!shm.shmAvailable()) return { io: 'read', addonPath: null, reason: shm.shmUnavailableReason() };
    return { io: 'mmap', addonPath: shm.addonPath() };
  } catch (err) {
    return { io: 'read', addonPath: null, reason: (err as Error).message };
  }
}

const taskBytes = (t: HashTask): number => {
  const last = t.ranges[t.ranges.length - 1];
  return last && t.ranges[0] ? last.offset + last.length - t.ranges[0].offset : 0;
};

/**
 * Hashes every task's ranges; returns the hex digests per task, in task order. The main thread
 * hashes too, beside `threads - 1` worker threads: it starts at once while the workers boot (a
 * worker takes ~50 ms to start, a visible part of a multi-GB publish, and gets tasks only once it
 * is up, so a small job never waits for one) and yields to the event loop between 8 MiB slices so
 * progress and worker messages keep flowing. Tasks are handed out largest
 * first to whichever hasher is free (longest-processing-time first), so the last tasks running
 * are small and every thread finishes at about the same time; each worker keeps one task queued
 * so it never waits for the main thread to hand it the next.
 */
export async function hashRanges(tasks: readonly HashTask[], options: HashPoolOptions): Promise<string[][]> {
  const algo = checkHashAlgo(options.algo);
  const threads = Math.max(1, Math.min(options.threads ?? availableParallelism(), tasks.length || 1));
  const pieceBytes = options.pieceBytes ?? 32 * 1024 * 1024;
  if (!Number.isSafeInteger(pieceBytes) || pieceBytes <= 0 || pieceBytes % (2 * 1024 * 1024) !== 0)
    throw new ConfigError(`pieceBytes ${pieceBytes}: expected a positive multiple of 2 MiB`);
  const io = await resolveHashIo(options.io);
  const require = createRequire(import.meta.url);
  const workerData: WorkerData = {
    // Small enough to stay in a core's L2 cache between the read's copy and the hash (as `cat`'s
    // 128 KiB buffer does), large enough that syscalls cost nothing measurable.
    chunkBytes: options.chunkBytes ?? 512 * 1024,
    pieceBytes,
    shmAddonPath: io.addonPath,
    blakePath: require.resolve('@napi-rs/blake-hash'),
    xxhashPath: require.resolve('@node-rs/xxhash'),
  };
  const results: string[][] = new Array(tasks.length);
  if (tasks.length === 0) return results;
  const order = tasks
    .map((_, i) => i)
    .sort((a, b) => taskBytes(tasks[b] as HashTask) - taskBytes(tasks[a] as HashTask) || a - b);
  let next = 0;
  const take = (): WireTask | undefined => {
    if (next >= order.length) return undefined;
    const id = order[next++] as number;
    const t = tasks[id] as HashTask;
    return { id, path: t.path, ranges: t.ranges, algo, io: io.io };
  };
  const fileError = (id: number, message: string, cause?: unknown) => {
    const t = tasks[id] as HashTask;
    return new HotweightsError('HW_CHECKPOINT', `cannot hash ${t.path}: ${message}`, {
      details: { file: t.path },
      cause,
    });
  };

  let failed: Error | undefined;
  let done = 0;
  let finish: () => void = () => {};
  let fail: (err: Error) => void = () => {};
  const allDone = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  // Handled here so a failure before anyone awaits allDone is never reported as unhandled.
  allDone.catch(() => {});
  const complete = (id: number, hexes: string[]) => {
    results[id] = hexes;
    done++;
    if (done === tasks.length) finish();
  };
  const abort = (err: Error) => {
    if (failed) return;
    failed = err;
    fail(err);
  };

  const workers: Worker[] = [];
  const inFlight = new Map<Worker, number>();
  // Each worker keeps a second task queued while it hashes one, so it never waits for the main
  // thread (which reads worker messages only between its slices) to hand it the next; near the
  // end, one at a time, so no task sits queued behind another while a thread is idle.
  const topUp = (w: Worker, most = 2) => {
    const depth = Math.min(most, order.length - next > threads ? 2 : 1);
    while ((inFlight.get(w) ?? 0) < depth) {
      const t = take();
      if (!t) return;
      inFlight.set(w, (inFlight.get(w) ?? 0) + 1);
      w.postMessage(t);
    }
  };
  const onMain = options.mainThread ?? true;
  for (let i = onMain ? 1 : 0; i < threads; i++) {
    // Plain CommonJS with resolved paths: no loader (tsx) or conditions to inherit, a faster boot.
    const w = new Worker(WORKER_SOURCE, { eval: true, workerData, execArgv: [] });
    workers.push(w);
    inFlight.set(w, 0);
    w.on('message', (m: WorkerReply) => {
      if (failed) return;
      // Tasks go to a worker only once it has booted; until then the main thread hashes them.
      if (m.ready) return topUp(w, 1);
      if (m.progress) options.onBytes?.(m.progress);
      if (m.error !== undefined) abort(fileError(m.id, m.error));
      else if (m.hexes) {
        inFlight.set(w, (inFlight.get(w) ?? 1) - 1);
        complete(m.id, m.hexes);
        topUp(w);
      }
    });
    w.on('error', (err) =>
      abort(new HotweightsError('HW_INTERNAL', `hash worker failed: ${err.message}`, { cause: err })),
    );
  }

  const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
  const runOnMain = async () => {
    const runTask = mainRunner(require, workerData);
    for (let t = take(); t && !failed; t = take()) {
      const task = t;
      for (const w of workers) if (inFlight.get(w)) topUp(w);
      let hexes: string[] | undefined;
      try {
        const it = runTask(task);
        for (;;) {
          const step = it.next();
          if (step.done) {
            hexes = step.value;
            break;
          }
          options.onBytes?.(step.value);
          await yieldToEventLoop();
          if (failed) {
            it.return([]);
            return;
          }
        }
      } catch (err) {
        abort(fileError(task.id, (err as Error).message, err));
        return;
      }
      complete(task.id, hexes);
    }
  };
  try {
    await Promise.all([onMain ? runOnMain() : undefined, allDone]);
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  return results;
}
