// The least a Node process can take to BLAKE3 a checkpoint's tensors: what `hotweights publish`'s
// hashing could cost with nothing else in the process (no CLI, no manifest, no checks), so the
// publish bench can say how much of publish's gap to `b3sum` is Node itself.
//
// Start-up is Node's own (this file loads two addons and nothing of the CLI); every core hashes:
// the main thread and one worker per other core (a worker of this file alone, so its boot loads
// no module graph), each claiming the next tensor from a shared counter, largest first, through
// the same memory maps (32 MiB pieces) and napi BLAKE3 hasher publish uses. Prints one line of
// JSON: tensors, bytes, ms from process start to the first hashed byte and to the end.
//
// Usage: node bench/planner/hash-floor.mjs SHARD.safetensors [...]
import { closeSync, openSync, readSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism } from 'node:os';
import { dirname, join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const require = createRequire(import.meta.url);
const PIECE = 32 * 1024 * 1024;

/**
 * [file index, offset, length] of every tensor, largest first. Its own few lines, not the
 * planner's header reader or hash runner: those load @hotweights/core's module graph (~12 ms here),
 * which would be the CLI's cost counted in the floor.
 */
function tensorRanges(files) {
  const ranges = [];
  files.forEach((file, index) => {
    const fd = openSync(file, 'r');
    const head = Buffer.alloc(8);
    readSync(fd, head, 0, 8, 0);
    const size = Number(head.readBigUInt64LE(0));
    const json = Buffer.alloc(size);
    readSync(fd, json, 0, size, 8);
    closeSync(fd);
    for (const [name, t] of Object.entries(JSON.parse(json.toString('utf8')))) {
      if (name === '__metadata__') continue;
      const [lo, hi] = t.data_offsets;
      ranges.push([index, 8 + size + lo, hi - lo]);
    }
  });
  return ranges.sort((a, b) => b[2] - a[2]);
}

// The shm addon itself (not its package's module graph), as a worker that cannot import it does.
const SHM_ADDON = join(
  dirname(require.resolve('@hotweights/shm/package.json')),
  'build/Release/hotweights_shm.node',
);

function hashClaimed({ files, table, next, count }) {
  const shm = require(SHM_ADDON);
  const { Blake3Hasher } = require('@napi-rs/blake-hash');
  const t = new Float64Array(table);
  const counter = new Int32Array(next);
  const fds = files.map((f) => openSync(f, 'r'));
  let first = -1;
  for (let i = Atomics.add(counter, 0, 1); i < count; i = Atomics.add(counter, 0, 1)) {
    const [file, offset, length] = [t[3 * i], t[3 * i + 1], t[3 * i + 2]];
    const hasher = new Blake3Hasher();
    for (let at = offset; at < offset + length; at += PIECE) {
      // The addon maps from a page boundary; the piece starts `skip` bytes into the mapping.
      const skip = at % shm.pageSize;
      const bytes = Math.min(PIECE, offset + length - at);
      const mapped = shm.mapRange(fds[file], bytes + skip, at - skip, 0);
      if (first < 0) first = performance.timeOrigin + performance.now();
      hasher.update(Buffer.from(mapped, skip, bytes));
      shm.unmapRange(mapped);
    }
    hasher.digest('hex');
  }
  for (const fd of fds) closeSync(fd);
  return first;
}

if (isMainThread) {
  const files = process.argv.slice(2);
  if (files.length === 0) throw new Error('usage: node hash-floor.mjs SHARD.safetensors [...]');
  const ranges = tensorRanges(files);
  const table = new SharedArrayBuffer(8 * 3 * ranges.length);
  new Float64Array(table).set(ranges.flat());
  const job = { files, table, next: new SharedArrayBuffer(4), count: ranges.length };
  const workers = Array.from(
    { length: availableParallelism() - 1 },
    () => new Worker(new URL(import.meta.url), { workerData: job }),
  );
  const done = workers.map((w) => new Promise((ok, fail) => w.once('message', ok).once('error', fail)));
  const firsts = [hashClaimed(job), ...(await Promise.all(done))].filter((f) => f > 0);
  const start = performance.timeOrigin;
  console.log(
    JSON.stringify({
      tensors: ranges.length,
      bytes: ranges.reduce((n, r) => n + r[2], 0),
      firstHashedMs: Math.round(Math.min(...firsts) - start),
      endMs: Math.round(performance.now()),
    }),
  );
} else parentPort.postMessage(hashClaimed(workerData));
