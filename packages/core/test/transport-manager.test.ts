import {
  loadConfig,
  NoTransportError,
  type ProbeContext,
  TransportManager,
  type TransportProvider,
} from '@hotweights/core';
import { describe, expect, it } from 'vitest';

const ctx: ProbeContext = { rank: 0, worldSize: 1, launcher: 'none', config: loadConfig({}) };

function fake(name: string, priority: number, probe: TransportProvider['probe']): TransportProvider {
  return {
    name,
    priority,
    probe,
    create: async () => {
      throw new Error('not used');
    },
  };
}

describe('TransportManager', () => {
  const up = async () => ({ available: true as const });
  it('selects the highest-priority available transport', async () => {
    const m = new TransportManager({
      providers: [
        fake('local', 10, up),
        fake('mpi', 30, async () => ({ available: false, reason: 'not under mpirun' })),
        fake('ucx', 20, up),
      ],
    });
    const { provider, probed } = await m.select(ctx);
    expect(provider.name).toBe('ucx');
    expect(probed.map((p) => p.name)).toEqual(['mpi', 'ucx', 'local']);
  });

  it('honours a forced name and explains why it cannot be used', async () => {
    const m = new TransportManager({
      providers: [
        fake('local', 10, up),
        fake('mpi', 30, async () => ({ available: false, reason: 'libmpi.so.40 not found' })),
      ],
    });
    expect((await m.select(ctx, 'local')).provider.name).toBe('local');
    await expect(m.select(ctx, 'mpi')).rejects.toThrowError(
      /transport "mpi" is unavailable: libmpi.so.40 not found/,
    );
    await expect(m.select(ctx, 'nccl')).rejects.toThrowError(NoTransportError);
    await expect(
      m.select({ ...ctx, config: loadConfig({ HOTWEIGHTS_TRANSPORT: 'mpi' }) }),
    ).rejects.toThrowError(/"mpi" is unavailable/);
  });

  it('survives probes that throw, hang or return garbage, and lists every reason', async () => {
    const m = new TransportManager({
      probeTimeoutMs: 100,
      providers: [
        fake('throws', 5, async () => {
          throw new Error('boom');
        }),
        fake('hangs', 4, () => new Promise(() => {})),
        fake('garbage', 3, async () => 42 as never),
      ],
    });
    const err = await m.select(ctx).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(NoTransportError);
    const reasons = (err as NoTransportError).reasons;
    expect(reasons.throws).toBe('probe threw: boom');
    expect(reasons.hangs).toBe('probe did not answer within 100 ms');
    expect(reasons.garbage).toMatch(/other than/);
  });

  it('rejects registration of something that is not a provider', () => {
    expect(
      () => new TransportManager({ providers: [{ name: 'Bad Name', priority: 1 } as never] }),
    ).toThrowError(/expected a TransportProvider/);
  });
});
