/**
 * What the probe says, in this order (one process opens one pair of libraries for good once it
 * works): this machine's own libraries (no libnccl.so.2 here; no GPU either), a missing CUDA
 * runtime, the stand-ins (test doubles of NCCL and the CUDA runtime) without a device, then with
 * one, with and without a rendezvous.
 */
import { copyFileSync } from 'node:fs';
import { join } from 'node:path';
import { checkProviderContract } from '@hotweights/compliance';
import { loadConfig, type ProbeContext } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';
import { probeNccl, provider } from '../src/index.js';
import { buildStandins } from './standin.js';

const standins = buildStandins();
afterAll(() => standins.remove());

function ctx(env: Record<string, string> = {}, worldSize = 1): ProbeContext {
  return { rank: 0, worldSize, launcher: worldSize > 1 ? 'env' : 'none', config: loadConfig(env) };
}

describe('nccl probe', () => {
  it('names libnccl.so.2 as missing on this machine, and keeps the provider contract', async () => {
    const r = await provider.probe(ctx());
    expect(r.available).toBe(false);
    expect(r.available ? '' : r.reason).toMatch(
      /^no libnccl\.so\.2 \(not found by the dynamic loader\) \(NCCL; set HOTWEIGHTS_NCCL_LIBRARY\)/,
    );
    const report = await checkProviderContract(provider, ctx());
    expect(report.failures).toEqual([]);
  });

  it('names a missing CUDA runtime, every alternative tried', () => {
    const r = probeNccl(
      ctx({
        HOTWEIGHTS_NCCL_LIBRARY: standins.nccl,
        HOTWEIGHTS_CUDART_LIBRARY: 'libcudart-absent.so.13:libcudart-absent.so',
      }),
    );
    expect(r).toEqual({
      available: false,
      reason:
        'no libcudart-absent.so.13 (not found by the dynamic loader), no libcudart-absent.so (not found by the dynamic loader) (the CUDA runtime; set HOTWEIGHTS_CUDART_LIBRARY)',
    });
  });

  it('says there is no device when the runtime finds none', () => {
    process.env.STANDIN_CUDA_DEVICES = '0';
    try {
      expect(probeNccl(ctx(standins.env))).toEqual({
        available: false,
        reason: `no CUDA device (cudaGetDeviceCount: no CUDA-capable device is detected (cudaError 100), runtime ${standins.cudart})`,
      });
    } finally {
      delete process.env.STANDIN_CUDA_DEVICES;
    }
  });

  it('is available over the stand-ins with a device; more than one rank needs MASTER_ADDR/PORT', () => {
    // Copies: the failed pair above stays cached under its own paths.
    const nccl = join(standins.dir, 'libnccl-copy.so.2');
    const cudart = join(standins.dir, 'libcudart-copy.so.12');
    copyFileSync(standins.nccl, nccl);
    copyFileSync(standins.cudart, cudart);
    process.env.STANDIN_CUDA_DEVICES = '2';
    const env = { HOTWEIGHTS_NCCL_LIBRARY: nccl, HOTWEIGHTS_CUDART_LIBRARY: cudart };
    try {
      expect(probeNccl(ctx(env))).toEqual({
        available: true,
        detail: 'NCCL 2.19.3, CUDA runtime 12.4, 2 device(s), 1 rank',
      });
      expect(probeNccl(ctx(env, 2), {})).toEqual({
        available: false,
        reason:
          'NCCL 2.19.3, CUDA runtime 12.4, 2 device(s), but no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)',
      });
      expect(probeNccl(ctx(env, 2), { MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500' })).toEqual({
        available: true,
        detail: 'NCCL 2.19.3, CUDA runtime 12.4, 2 device(s), 2 ranks, rank 0 at 127.0.0.1:29500',
      });
    } finally {
      delete process.env.STANDIN_CUDA_DEVICES;
    }
  });
});
