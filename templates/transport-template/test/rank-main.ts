/**
 * One rank of the compliance job: started once per rank with RANK, WORLD_SIZE, MASTER_ADDR and
 * MASTER_PORT set (by the test, or by torchrun / mpirun in real use). Prints a JSON summary.
 */

import { runRankCompliance } from '@hotweights/compliance';
import { loadConfig, readLaunchContext } from '@hotweights/core';
import { provider } from '../src/index.js';

const { rank, worldSize } = readLaunchContext();
const transport = await provider.create({ rank, worldSize, config: loadConfig() });
try {
  const report = await runRankCompliance(transport);
  process.stdout.write(`${JSON.stringify({ rank, worldSize, passed: report.passed })}\n`);
} finally {
  await transport.close();
}
