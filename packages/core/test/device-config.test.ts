import { describe, expect, it } from 'vitest';
import { isDeviceBuffer, loadConfig } from '../src/index.js';

describe('device configuration (issue #15)', () => {
  it('defaults to the real driver library and the seed copy knobs', () => {
    const c = loadConfig({});
    expect(c.cudaLibrary).toBe('libcuda.so.1');
    expect(c.cudaDevice).toBeUndefined();
    expect([c.ipcAdapt, c.ipcMinInflight, c.ipcMaxInflight]).toEqual([false, 1, 16]);
    expect([c.ipcCopyChunkMb, c.ipcCopyStreams, c.ipcTargetBucketMs]).toEqual([16, 2, 250]);
  });

  it('reads the adaptive window and refuses a min above the max, naming both', () => {
    const c = loadConfig({ HOTWEIGHTS_IPC_ADAPT: 'true', HOTWEIGHTS_CUDA_DEVICE: '3' });
    expect([c.ipcAdapt, c.cudaDevice]).toEqual([true, 3]);
    expect(() => loadConfig({ HOTWEIGHTS_IPC_MIN_INFLIGHT: '8', HOTWEIGHTS_IPC_MAX_INFLIGHT: '4' })).toThrow(
      /HOTWEIGHTS_IPC_MIN_INFLIGHT=8 is above HOTWEIGHTS_IPC_MAX_INFLIGHT=4/,
    );
    expect(() => loadConfig({ HOTWEIGHTS_IPC_ADAPT: 'maybe' })).toThrow(/HOTWEIGHTS_IPC_ADAPT="maybe"/);
  });

  it('tells device buffers from host memory', () => {
    const dev = {
      kind: 'device',
      api: 'cuda',
      device: 0,
      ptr: 4096n,
      size: 8,
      copyToHost: async () => {},
      copyFromHost: async () => {},
    };
    expect(isDeviceBuffer(dev)).toBe(true);
    expect(isDeviceBuffer(dev, 'cuda')).toBe(true);
    expect(isDeviceBuffer(dev, 'rocm')).toBe(false);
    expect(isDeviceBuffer(new Uint8Array(8))).toBe(false);
  });
});
