/**
 * Hash workers started before a command's modules load. `hotweights publish` spends its first
 * ~100 ms on one core (Node's start-up, then loading ~80 modules) and a hash worker takes ~35 ms to
 * boot: started from the CLI's entry, the worker boots on the other core meanwhile, and the next
 * startHashWorkers (hash-pool.ts) takes it instead of starting one, so both cores hash from the
 * first task. This module imports nothing of the packages' entry points, so loading it early
 * costs nothing measurable.
 */
import { availableParallelism } from 'node:os';
import type { Worker } from 'node:worker_threads';
import { siblingModule, startModuleWorker } from '@hotweights/manifest/worker-module';
import {
  DEFAULT_CHUNK_BYTES,
  DEFAULT_PIECE_BYTES,
  type HashRunnerConfig,
  type HashWorkerReply,
} from './hash-runner.js';

/** A worker started by prestartHashWorkers, and what it has said so far. */
export interface EarlyHashWorker {
  readonly worker: Worker;
  readonly config: HashRunnerConfig;
  ready: boolean;
  failed: boolean;
}

let early: EarlyHashWorker[] = [];

/**
 * Starts `count` hash workers (default: one per core but the main thread's) with the pool's default
 * settings, for the next startHashWorkers call to take; returns them. Nothing else needs doing if
 * that call never comes: an idle early worker does not keep the process alive.
 */
export function prestartHashWorkers(count = availableParallelism() - 1): readonly EarlyHashWorker[] {
  const started: EarlyHashWorker[] = [];
  const config: HashRunnerConfig = {
    chunkBytes: DEFAULT_CHUNK_BYTES,
    pieceBytes: DEFAULT_PIECE_BYTES,
    shm: true,
  };
  for (let i = 0; i < count; i++) {
    const worker = startModuleWorker(siblingModule('hash-worker', import.meta.url), { workerData: config });
    const w: EarlyHashWorker = { worker, config, ready: false, failed: false };
    worker.on('message', (m: HashWorkerReply) => {
      if ('ready' in m) w.ready = true;
    });
    // A worker that cannot boot (no shm addon, say) is left out; the pool starts its own.
    worker.on('error', () => {
      w.failed = true;
    });
    worker.on('exit', () => {
      w.failed = true;
    });
    worker.unref();
    started.push(w);
  }
  early.push(...started);
  return started;
}

const sameConfig = (a: HashRunnerConfig, b: HashRunnerConfig): boolean =>
  a.chunkBytes === b.chunkBytes && a.pieceBytes === b.pieceBytes && a.shm === b.shm;

/**
 * Up to `most` early workers started with `config`, each once (referenced again: the caller now
 * waits on them); the others, started with other settings or beyond `most`, are terminated.
 */
export function takePrestartedHashWorkers(config: HashRunnerConfig, most: number): EarlyHashWorker[] {
  const taken: EarlyHashWorker[] = [];
  for (const w of early) {
    if (!w.failed && taken.length < most && sameConfig(w.config, config)) {
      w.worker.ref();
      taken.push(w);
    } else void w.worker.terminate();
  }
  early = [];
  return taken;
}
