/**
 * What the probe says on this machine (no GPU, no NVIDIA driver) and over the stand-in (a test
 * double of the driver API), including the stand-in with no device.
 */
import { loadConfig, type ProbeContext } from '@hotweights/core';
import { describe, expect, it } from 'vitest';
import { probeCudaIpc } from '../src/probe.js';
import { standInLibrary } from './stand-in.js';

function ctx(env: Record<string, string>): ProbeContext {
  return { rank: 0, worldSize: 1, launcher: 'none', config: loadConfig(env) };
}

describe('cuda-ipc probe', () => {
  it('names the missing driver library on a machine without one', () => {
    const r = probeCudaIpc(ctx({ HOTWEIGHTS_CUDA_LIBRARY: '/nonexistent/libcuda.so.1' }));
    expect(r).toEqual({
      available: false,
      reason: '/nonexistent/libcuda.so.1 not found (no NVIDIA driver here)',
    });
  });

  it('says there is no device when the driver finds none', () => {
    process.env.CUDA_STANDIN_DEVICES = '0';
    try {
      const r = probeCudaIpc(ctx({ HOTWEIGHTS_CUDA_LIBRARY: standInLibrary() }));
      expect(r.available).toBe(false);
      expect(!r.available && r.reason).toMatch(/^no CUDA device \(cuInit: CUDA_ERROR_NO_DEVICE/);
    } finally {
      delete process.env.CUDA_STANDIN_DEVICES;
    }
  });

  it('is available over the stand-in, which names itself as no GPU', () => {
    const r = probeCudaIpc(ctx({ HOTWEIGHTS_CUDA_LIBRARY: standInLibrary() }));
    expect(r.available).toBe(true);
    expect(r.available && r.detail).toMatch(
      /1 device\(s\), hotweights CUDA stand-in 0 \(host memory, not a GPU\)/,
    );
  });
});
