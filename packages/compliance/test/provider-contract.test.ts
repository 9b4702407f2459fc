import { ComplianceError, checkProviderContract } from '@hotweights/compliance';
import {
  loadConfig,
  type ProbeContext,
  type Transport,
  type TransportOptions,
  type TransportProvider,
} from '@hotweights/core';
import { describe, expect, it } from 'vitest';

// A one-rank transport that keeps the contract, built here so the suite is checked against
// something that is not one of our own transports.
function loopProvider(overrides: Partial<TransportProvider> = {}): TransportProvider {
  return {
    name: 'loop',
    priority: 1,
    probe: async () => ({ available: true }),
    create: async (options: TransportOptions): Promise<Transport> => ({
      name: 'loop',
      rank: options.rank,
      worldSize: options.worldSize,
      broadcast: () => {
        throw new Error('not used by the provider contract');
      },
      close: async () => {},
    }),
    ...overrides,
  } as TransportProvider;
}

const ctx: ProbeContext = { rank: 0, worldSize: 1, launcher: 'none', config: loadConfig({}) };
const options = { rank: 0, worldSize: 1 } as TransportOptions;

describe('checkProviderContract', () => {
  it('passes a provider that keeps the contract', async () => {
    const report = await checkProviderContract(loopProvider(), ctx, options);
    expect(report.failures).toEqual([]);
    expect(report.passed).toContain('create() returns a transport and close() is idempotent');
  });

  it('names each broken rule of a provider that breaks several', async () => {
    const broken = loopProvider({
      name: 'Bad Name',
      priority: Number.NaN,
      probe: async () => ({ available: false, reason: '' }),
    });
    const failure = await checkProviderContract(broken, ctx, options).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(ComplianceError);
    const checks = (failure as ComplianceError).failures.map((f) => f.check);
    expect(checks).toEqual([
      'name is a short lowercase identifier',
      'priority is a finite number',
      'probe resolves to {available} and does not throw',
    ]);
    expect((failure as ComplianceError).code).toBe('HW_COMPLIANCE');
  });

  it('catches a transport whose rank differs from what it was created with', async () => {
    const provider = loopProvider({
      create: async (o: TransportOptions) =>
        ({
          name: 'loop',
          rank: o.rank + 1,
          worldSize: o.worldSize,
          broadcast: () => {},
          close: async () => {},
        }) as never,
    });
    const failure = (await checkProviderContract(provider, ctx, options).catch(
      (e: unknown) => e,
    )) as ComplianceError;
    expect(failure.failures.map((f) => f.error)).toEqual(['transport rank/worldSize differ from options']);
  });
});
