// One rank of a job (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT set, as torchrun does): rank 0
// broadcasts 64 MiB over the nccl transport and every rank checks what it holds. See README.md to
// run it over the stand-in device libraries (test doubles) where there is no GPU.
import { loadConfig, readLaunchContext } from '@hotweights/core';
import { provider } from '@hotweights/transport-nccl';

const { rank, worldSize } = readLaunchContext();
const config = loadConfig();
const ctx = { rank, worldSize, config, launcher: 'env' };
const probe = await provider.probe(ctx);
if (!probe.available) throw new Error(`nccl is unavailable: ${probe.reason}`);
const transport = await provider.create({ rank, worldSize, config });
const ranks = Array.from({ length: worldSize }, (_, i) => i);
await transport.prepare(ranks.length > 2 ? [ranks, [0, worldSize - 1]] : [ranks]);
const data = new Uint8Array(64 << 20);
if (rank === 0) data.fill(42);
const started = performance.now();
await transport.broadcast({ bucketId: 1, root: 0, ranks, data });
const ms = performance.now() - started;
console.log(
  `rank ${rank}: ${probe.detail}; 64 MiB in ${ms.toFixed(0)} ms, bytes ${data.every((b) => b === 42) ? 'correct' : 'WRONG'}`,
);
await transport.close();
