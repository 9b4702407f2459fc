import { MemoryAdapter } from '@hotweights/adapter-memory';
import { runAdapterCompliance } from '@hotweights/compliance/adapter';
import { expect, it } from 'vitest';

it('the memory adapter passes the adapter compliance suite', async () => {
  // The memory adapter's place is its object: a "restarted" adapter is the same one.
  const adapter = new MemoryAdapter();
  const report = await runAdapterCompliance({
    open: async () => adapter,
    readLive: async () => {
      const live = await adapter.currentVersion();
      if (live === null) return null;
      // Keys are `<path>:0` for the suite's whole-file versions.
      return new Map(adapter.keys().map((key) => [key.replace(/:0$/, ''), adapter.read(key) as Uint8Array]));
    },
  });
  expect(report.failures).toEqual([]);
  expect(report.passed).toHaveLength(8);
});
