/**
 * Whether the NCCL transport can run here: the addon loads, libnccl.so.2 and the CUDA runtime
 * open, a CUDA device is there, and (for more than one rank) MASTER_ADDR/MASTER_PORT say where
 * rank 0 hands out the NCCL unique id. Never throws; creates no CUDA context and no communicator.
 */
import { type ProbeContext, type ProbeResult, readMasterAddress } from '@hotweights/core';
import { type LibraryProbe, loadNative } from './native.js';

export function probeLibraries(ctx: ProbeContext): LibraryProbe | { ok: false; reason: string } {
  const { native, error } = loadNative();
  if (!native) return { ok: false, reason: error ?? 'native addon did not load' };
  try {
    return native.probe(ctx.config.ncclLibrary, ctx.config.cudartLibrary);
  } catch (err) {
    return { ok: false, reason: `probing NCCL failed: ${(err as Error).message}` };
  }
}

export function probeNccl(ctx: ProbeContext, rendezvous?: Readonly<Record<string, string>>): ProbeResult {
  const lib = probeLibraries(ctx);
  if (!lib.ok) return { available: false, reason: lib.reason ?? 'NCCL is unusable' };
  const found = lib as LibraryProbe;
  const what = `NCCL ${found.nccl}, CUDA runtime ${found.cudaRuntime}, ${found.devices} device(s)`;
  if (ctx.worldSize === 1) return { available: true, detail: `${what}, 1 rank` };
  const at = readMasterAddress(rendezvous);
  if ('missing' in at) return { available: false, reason: `${what}, but ${at.missing}` };
  return { available: true, detail: `${what}, ${ctx.worldSize} ranks, rank 0 at ${at.host}:${at.port}` };
}
