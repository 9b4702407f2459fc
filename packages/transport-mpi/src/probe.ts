/**
 * Whether the MPI transport can run here: under an MPI launcher, with the addon loaded and an
 * MPI library whose ABI the addon understands. Never throws and never initializes MPI.
 */
import type { ProbeContext, ProbeResult } from '@hotweights/core';
import { loadNative } from './native.js';

export function probeMpi(ctx: ProbeContext): ProbeResult {
  if (ctx.launcher !== 'openmpi' && ctx.launcher !== 'pmix') {
    const how =
      ctx.launcher === 'env'
        ? 'started by a non-MPI launcher (RANK/WORLD_SIZE only)'
        : 'not started by an MPI launcher (no OMPI_COMM_WORLD_SIZE or PMIX_RANK)';
    return { available: false, reason: `${how}; run under mpirun` };
  }
  const { native, error } = loadNative();
  if (!native) return { available: false, reason: error ?? 'native addon did not load' };
  let lib: ReturnType<typeof native.probe>;
  try {
    lib = native.probe(ctx.config.mpiLibrary);
  } catch (err) {
    return { available: false, reason: `probing ${ctx.config.mpiLibrary} failed: ${(err as Error).message}` };
  }
  if (!lib.ok) return { available: false, reason: lib.reason ?? `${ctx.config.mpiLibrary} is unusable` };
  return { available: true, detail: `${lib.version ?? 'Open MPI'}, ${ctx.worldSize} ranks` };
}
