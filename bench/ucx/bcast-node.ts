/**
 * One rank of the UCX benchmark (started by run.ts with RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT):
 * one warm-up, then `iterations` broadcasts of one bucket of `mib` MiB from rank 0, each after a
 * 1-byte barrier broadcast. Rank 0 times each from its start to its end (the root resolves when the
 * last rank has acknowledged the whole bucket) and prints the seconds as one JSON line.
 */
import { loadConfig, readLaunchContext } from '@hotweights/core';
import { provider } from '../../packages/transport-ucx/src/index.js';

const mib = Number(process.argv[2]);
const iterations = Number(process.argv[3]);
const { rank, worldSize } = readLaunchContext();
const t = await provider.create({ rank, worldSize, config: loadConfig() });
const ranks = Array.from({ length: worldSize }, (_, i) => i);
const data = new Uint8Array(mib << 20);
data.fill(rank === 0 ? 1 : 0); // touch every page before timing
const tick = new Uint8Array(1);
const seconds: number[] = [];
for (let i = 0; i <= iterations; i++) {
  await t.broadcast({ bucketId: 1, root: 0, ranks, data: tick });
  const started = process.hrtime.bigint();
  await t.broadcast({ bucketId: 2, root: 0, ranks, data });
  if (i > 0) seconds.push(Number(process.hrtime.bigint() - started) / 1e9);
}
if (rank === 0) process.stdout.write(`${JSON.stringify({ seconds })}\n`);
await t.close();
