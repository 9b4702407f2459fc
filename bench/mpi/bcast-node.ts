/**
 * The product side: the mpi transport broadcasting the same sizes from rank 0 to every rank,
 * timed like bcast.c (barrier, broadcast, barrier). Prints one JSON line per size on rank 0.
 * Usage: mpirun -n N node --conditions=@hotweights/source --import tsx bcast-node.ts ITERATIONS SIZE_MIB...
 */
import { loadConfig, readLaunchContext } from '@hotweights/core';
import { type MpiTransport, provider } from '@hotweights/transport-mpi';

const [iterArg, ...sizes] = process.argv.slice(2);
const iterations = Number(iterArg);
const { rank, worldSize } = readLaunchContext();
const config = loadConfig();
const transport = (await provider.create({ rank, worldSize, config })) as MpiTransport;
const all = Array.from({ length: worldSize }, (_, i) => i);
await transport.prepare([all]);
let bucketId = 0;
for (const mib of sizes.map(Number)) {
  const data = new Uint8Array(mib * 1024 * 1024).fill(rank === 0 ? 0xab : 0); // touched before timing
  const seconds: number[] = [];
  for (let i = 0; i <= iterations; i++) {
    await transport.barrier();
    const t = performance.now();
    await transport.broadcast({ bucketId: bucketId++, root: 0, ranks: all, data });
    await transport.barrier();
    if (i > 0) seconds.push((performance.now() - t) / 1000);
  }
  if (data[data.length - 1] !== 0xab) process.stderr.write(`rank ${rank}: wrong bytes\n`);
  if (rank === 0)
    process.stdout.write(
      `${JSON.stringify({ ranks: worldSize, mib, chunkMb: config.mpiChunkMb, seconds })}\n`,
    );
}
await transport.close();
