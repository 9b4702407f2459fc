/**
 * One rank of the UCX benchmarks (started by run.ts or fanout.ts with RANK, WORLD_SIZE, MASTER_ADDR,
 * MASTER_PORT): for each size in `mib` (comma-separated), one warm-up, then `iterations`
 * broadcasts of one bucket of that many MiB from rank 0 to every rank, each after a 1-byte
 * barrier broadcast. Rank 0 times each from its start to its end (the root resolves when the last
 * rank has acknowledged the whole bucket) and prints the seconds as one JSON line per size.
 */
import { loadConfig, readLaunchContext } from '@hotweights/core';
import { provider } from '../../packages/transport-ucx/src/index.js';

const sizes = String(process.argv[2]).split(',').map(Number);
const iterations = Number(process.argv[3]);
const { rank, worldSize } = readLaunchContext();
const t = await provider.create({ rank, worldSize, config: loadConfig() });
const ranks = Array.from({ length: worldSize }, (_, i) => i);
const tick = new Uint8Array(1);
for (const mib of sizes) {
  const data = new Uint8Array(mib << 20);
  data.fill(rank === 0 ? 1 : 0); // touch every page before timing
  const seconds: number[] = [];
  for (let i = 0; i <= iterations; i++) {
    await t.broadcast({ bucketId: 1, root: 0, ranks, data: tick });
    const started = process.hrtime.bigint();
    await t.broadcast({ bucketId: 2, root: 0, ranks, data });
    if (i > 0) seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
  }
  if (data[data.length - 1] !== 1) process.stderr.write(`rank ${rank}: wrong bytes\n`);
  if (rank === 0) process.stdout.write(`${JSON.stringify({ mib, seconds })}\n`);
}
await t.close();
