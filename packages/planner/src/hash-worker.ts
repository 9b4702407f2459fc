/**
 * A hash pool worker thread (started by hash-pool.ts): takes a WireBatch, claims its tasks one
 * after the other until none is left, hashes each with the shared HashRunner and posts progress
 * every 64 MiB and each task's digests at its end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  claimTask,
  HashRunner,
  type HashRunnerConfig,
  type HashWorkerReply,
  loadRunnerShm,
  type WireBatch,
} from './hash-runner.js';

const PROGRESS_EVERY = 64 * 1024 * 1024;
const port = parentPort;
if (!port) throw new Error('hash-worker.ts runs as a worker thread (see hash-pool.ts)');
const config = workerData as HashRunnerConfig;
const runner = new HashRunner(config, await loadRunnerShm(config.shm));
const reply = (m: HashWorkerReply) => port.postMessage(m);

port.on('message', (batch: WireBatch) => {
  for (let task = claimTask(batch); task; task = claimTask(batch)) {
    try {
      const it = runner.runTask(task);
      let pending = 0;
      for (;;) {
        const step = it.next();
        if (step.done) {
          reply({ id: task.id, progress: pending, hexes: step.value });
          break;
        }
        pending += step.value;
        if (pending >= PROGRESS_EVERY) {
          reply({ id: task.id, progress: pending });
          pending = 0;
        }
      }
    } catch (err) {
      reply({
        id: task.id,
        error: (err as Error).message ?? String(err),
        code: (err as NodeJS.ErrnoException).code,
      });
      return;
    }
  }
});
reply({ ready: true });
