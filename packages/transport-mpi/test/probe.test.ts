import { execFileSync } from 'node:child_process';
import { checkProviderContract } from '@hotweights/compliance';
import { loadConfig, type ProbeContext } from '@hotweights/core';
import { describe, expect, it } from 'vitest';
import { loadNative, PACKAGE_ROOT, probeMpi, provider } from '../src/index.js';

function ctx(launcher: ProbeContext['launcher'], env: Record<string, string> = {}): ProbeContext {
  return { rank: 0, worldSize: 1, launcher, config: loadConfig(env) };
}

describe('mpi probe outside mpirun', () => {
  it('is unavailable without an MPI launcher, and says to use mpirun', async () => {
    const none = await provider.probe(ctx('none'));
    expect(none).toEqual({ available: false, reason: expect.stringContaining('run under mpirun') });
    const torchrun = await provider.probe(ctx('env'));
    expect(torchrun).toEqual({ available: false, reason: expect.stringContaining('non-MPI launcher') });
  });

  it('keeps the provider contract when unavailable', async () => {
    const report = await checkProviderContract(provider, ctx('none'));
    expect(report.failures).toEqual([]);
    expect(report.passed).toContain('probe resolves to {available} and does not throw');
  });

  it('names a missing MPI library, then a library that is not MPI, then accepts Open MPI', () => {
    // Order matters: one process can host one MPI, so the real library is opened last.
    expect(probeMpi(ctx('openmpi', { HOTWEIGHTS_MPI_LIBRARY: 'libmpi-absent.so.40' }))).toEqual({
      available: false,
      reason: 'libmpi-absent.so.40 not found',
    });
    expect(probeMpi(ctx('openmpi', { HOTWEIGHTS_MPI_LIBRARY: 'libz.so.1' }))).toEqual({
      available: false,
      reason: 'libz.so.1 is not an MPI library (no MPI_Init_thread)',
    });
    expect(probeMpi(ctx('pmix'))).toEqual({
      available: true,
      detail: expect.stringMatching(/^Open MPI v\d+\.\d+/),
    });
  });

  it('builds an addon with no link-time dependency on libmpi', () => {
    const { native, path, error } = loadNative();
    expect(error).toBeUndefined();
    expect(native?.status()).toEqual({ initialized: false, finalized: false, pending: 0 });
    expect(path?.startsWith(PACKAGE_ROOT)).toBe(true);
    const dynamic = execFileSync('readelf', ['-d', path as string], { encoding: 'utf8' });
    const needed = dynamic.split('\n').filter((l) => l.includes('(NEEDED)'));
    expect(needed.length).toBeGreaterThan(0);
    expect(needed.join('\n')).not.toMatch(/libmpi|libopen-pal|libopen-rte/);
  });
});
