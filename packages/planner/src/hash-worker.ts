/**
 * A hash pool worker thread (started by hash-pool.ts): takes WireTasks, hashes them with the
 * shared HashRunner and posts progress every 64 MiB and the digests at the end.
 */
import { parentPort, workerData } from 'node:worker_threads';
import {
  HashRunner,
  type HashRunnerConfig,
  type HashWorkerReply,
  loadRunnerShm,
  type WireTask,
} from './hash-runner.js';

const PROGRESS_EVERY = 64 * 1024 * 1024;
const port = parentPort;
if (!port) throw new Error('hash-worker.ts runs as a worker thread (see hash-pool.ts)');
const config = workerData as HashRunnerConfig;
const runner = new HashRunner(config, await loadRunnerShm(config.shm));
const reply = (m: HashWorkerReply) => port.postMessage(m);

port.on('message', (task: WireTask) => {
  try {
    const it = runner.runTask(task);
    let pending = 0;
    for (;;) {
      const step = it.next();
      if (step.done) {
        reply({ id: task.id, progress: pending, hexes: step.value });
        return;
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
  }
});
reply({ ready: true });
