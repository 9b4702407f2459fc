/**
 * Whether the CUDA-IPC transport can run here: the addon loads, the driver library opens
 * (HOTWEIGHTS_CUDA_LIBRARY, default libcuda.so.1), cuInit succeeds and there is a device; a
 * world of several ranks also needs a rendezvous directory, which the launcher provides. Never
 * throws. Reasons on a machine without a GPU: "libcuda.so.1 not found (no NVIDIA driver here)"
 * or "no CUDA device (...)".
 */
import type { ProbeContext, ProbeResult } from '@hotweights/core';
import { openDriver } from './cuda-device.js';

export function probeCudaIpc(ctx: ProbeContext): ProbeResult {
  const d = openDriver(ctx.config);
  if ('reason' in d) return { available: false, reason: d.reason };
  try {
    const name = d.native.device(ctx.config.cudaDevice ?? 0).name;
    const v = d.driverVersion;
    return {
      available: true,
      detail: `${d.devices} device(s), ${name}, driver API ${Math.floor(v / 1000)}.${(v % 1000) / 10}`,
    };
  } catch (err) {
    return { available: false, reason: `CUDA device unusable: ${(err as Error).message}` };
  }
}
