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
 * The hashing (hash-runner.ts) runs in worker threads (hash-worker.ts) and on the main thread.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { ConfigError, HotweightsError } from '@hotweights/core';
import {
  type HashAlgorithm,
  hashAlgorithmInfo,
  siblingModule,
  startModuleWorker,
  unknownHashAlgorithmMessage,
} from '@hotweights/manifest';
import { takePrestartedHashWorkers } from './hash-prestart.js';
import {
  claimTask,
  DEFAULT_CHUNK_BYTES,
  DEFAULT_PIECE_BYTES,
  type HashIo,
  type HashRange,
  HashRunner,
  type HashRunnerConfig,
  type HashWorkerReply,
  loadRunnerShm,
  stopBatch,
  wireBatch,
} from './hash-runner.js';

export type { HashIo, HashRange };

export interface HashTask {
  readonly path: string;
  /** Sorted, contiguous ranges (each starts where the previous ended). */
  readonly ranges: readonly HashRange[];
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
  /**
   * Workers started earlier with startHashWorkers (the same options), so they boot while the
   * caller lists files and reads headers; taken and terminated by this call.
   */
  readonly started?: StartedHashWorkers;
}

/** A worker started ahead of its hashRanges call, and whether it has said it is ready. */
interface SpareWorker {
  readonly worker: Worker;
  ready: boolean;
  readonly onReady: (m: HashWorkerReply) => void;
}

/** Hash workers booting ahead of a hashRanges call (startHashWorkers). */
export interface StartedHashWorkers {
  /** The workers, for the hashRanges call that takes them (null once taken or closed). */
  take(): Promise<SpareWorker[] | null>;
  /** Resolves once every worker has booted (or failed to). */
  ready(): Promise<void>;
  /** Terminates workers no hashRanges call took (a failure before hashing). */
  close(): Promise<void>;
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
  readonly reason?: string;
}

export async function resolveHashIo(wanted: HashIo = 'mmap'): Promise<ResolvedHashIo> {
  if (wanted === 'read') return { io: 'read', reason: 'read() requested' };
  try {
    const shm = await import('@hotweights/shm');
    if (!shm.shmAvailable()) return { io: 'read', reason: shm.shmUnavailableReason() };
    return { io: 'mmap' };
  } catch (err) {
    return { io: 'read', reason: (err as Error).message };
  }
}

const HASH_WORKER = siblingModule('hash-worker', import.meta.url);

/** Threads that hash an algorithm, the main thread included: 1 where the table says no workers. */
function wantedThreads(algo: HashAlgorithm, options: Pick<HashPoolOptions, 'threads'>): number {
  const onWorkers = hashAlgorithmInfo(algo)?.workerThreads === true;
  return onWorkers ? (options.threads ?? availableParallelism()) : 1;
}

/** What every hasher of a call shares (a worker's `workerData`). */
async function runnerConfig(
  options: Pick<HashPoolOptions, 'chunkBytes' | 'pieceBytes' | 'io'>,
): Promise<{ config: HashRunnerConfig; io: ResolvedHashIo }> {
  const pieceBytes = options.pieceBytes ?? DEFAULT_PIECE_BYTES;
  if (!Number.isSafeInteger(pieceBytes) || pieceBytes <= 0 || pieceBytes % (2 * 1024 * 1024) !== 0)
    throw new ConfigError(`pieceBytes ${pieceBytes}: expected a positive multiple of 2 MiB`);
  const io = await resolveHashIo(options.io);
  return {
    config: {
      chunkBytes: options.chunkBytes ?? DEFAULT_CHUNK_BYTES,
      pieceBytes,
      shm: io.io === 'mmap',
    },
    io,
  };
}

/**
 * Starts the worker threads a hashRanges call with the same options will use, so their boot
 * (~50 ms each) overlaps what the caller does before hashing instead of leaving a core idle at
 * its start. Pass the result as `started`; close() it if hashing never comes.
 */
export function startHashWorkers(options: HashPoolOptions): StartedHashWorkers {
  const algo = checkHashAlgo(options.algo);
  const count =
    (options.mainThread ?? true) ? wantedThreads(algo, options) - 1 : wantedThreads(algo, options);
  const booted: Promise<void>[] = [];
  let spares: Promise<SpareWorker[]> | null = runnerConfig(options).then(({ config }) => {
    // Workers the CLI started before its modules loaded (hash-prestart.ts) come first.
    const early = takePrestartedHashWorkers(config, Math.max(0, count));
    return Array.from({ length: Math.max(0, count) }, (_, i) => {
      const pre = early[i];
      const worker = pre?.worker ?? startModuleWorker(HASH_WORKER, { workerData: config });
      let up: () => void = () => {};
      booted.push(new Promise<void>((resolve) => (up = resolve)));
      const spare: SpareWorker = {
        worker,
        ready: false,
        onReady: (m) => {
          if (!('ready' in m)) return;
          spare.ready = true;
          up();
        },
      };
      if (pre?.ready) spare.onReady({ ready: true });
      worker.on('message', spare.onReady);
      // A boot failure is reported by the hashRanges call that takes the worker.
      worker.on('error', up);
      worker.on('exit', up);
      return spare;
    });
  });
  const all = spares;
  all.catch(() => {});
  return {
    async ready() {
      await all.catch(() => {});
      await Promise.all(booted);
    },
    take() {
      const taken = spares;
      spares = null;
      return taken ?? Promise.resolve(null);
    },
    async close() {
      const left = await this.take().catch(() => null);
      await Promise.all((left ?? []).map((s) => s.worker.terminate()));
    },
  };
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
 * progress and worker messages keep flowing. Tasks go largest first to whichever hasher is free
 * (longest-processing-time first), so the last tasks running are small and every thread finishes
 * at about the same time: each hasher claims its next task itself from a counter in shared memory
 * (hash-runner.ts's WireBatch), so a worker never idles waiting for the main thread, which reads
 * worker messages only between its slices, to hand it one.
 */
export async function hashRanges(tasks: readonly HashTask[], options: HashPoolOptions): Promise<string[][]> {
  const algo = checkHashAlgo(options.algo);
  // An algorithm the table does not run on worker threads hashes on the main thread alone.
  const onWorkers = hashAlgorithmInfo(algo)?.workerThreads === true;
  const threads = Math.max(1, Math.min(wantedThreads(algo, options), tasks.length || 1));
  const spares = (await options.started?.take()) ?? [];
  let io: ResolvedHashIo;
  let workerData: HashRunnerConfig;
  try {
    ({ config: workerData, io } = await runnerConfig(options));
  } catch (err) {
    await Promise.all(spares.map((s) => s.worker.terminate()));
    throw err;
  }
  const results: string[][] = new Array(tasks.length);
  if (tasks.length === 0) {
    await Promise.all(spares.map((s) => s.worker.terminate()));
    return results;
  }
  const order = tasks
    .map((_, i) => i)
    .sort((a, b) => taskBytes(tasks[b] as HashTask) - taskBytes(tasks[a] as HashTask) || a - b);
  const batch = wireBatch(tasks, order, algo, io.io);
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
    stopBatch(batch);
    fail(err);
  };

  const workers: Worker[] = [];
  const onMain = !onWorkers || (options.mainThread ?? true);
  for (let i = onMain ? 1 : 0; i < threads; i++) {
    const spare = spares.shift();
    if (spare) spare.worker.off('message', spare.onReady);
    const w = spare?.worker ?? startModuleWorker(HASH_WORKER, { workerData });
    workers.push(w);
    w.on('message', (m: HashWorkerReply) => {
      if (failed || 'ready' in m) return;
      if ('error' in m) return abort(fileError(m.id, m.error));
      if (m.progress) options.onBytes?.(m.progress);
      if (m.hexes) complete(m.id, m.hexes);
    });
    w.on('error', (err) =>
      abort(new HotweightsError('HW_INTERNAL', `hash worker failed: ${err.message}`, { cause: err })),
    );
    // Queued until the worker has booted; the main thread claims tasks meanwhile.
    w.postMessage(batch);
  }
  // Pre-started workers this call does not need (fewer tasks than threads) stop here.
  for (const s of spares) void s.worker.terminate();

  const yieldToEventLoop = () => new Promise<void>((resolve) => setImmediate(resolve));
  const runOnMain = async () => {
    const runner = new HashRunner(workerData, await loadRunnerShm(workerData.shm));
    for (let t = claimTask(batch); t && !failed; t = claimTask(batch)) {
      const task = t;
      let hexes: string[] | undefined;
      try {
        const it = runner.runTask(task);
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
