import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runAdapterCompliance } from '@hotweights/compliance/adapter';
import { afterAll, expect, it } from 'vitest';
import { KvAdapter } from '../src/index.js';

const target = await mkdtemp(join(tmpdir(), 'hw-kv-adapter-'));
afterAll(() => rm(target, { recursive: true, force: true }));

it('the kv adapter passes the adapter compliance suite', async () => {
  const report = await runAdapterCompliance({
    open: async () => new KvAdapter(target),
    // A reader: the live version's index, then each item's blob. The suite's items are whole
    // files keyed `<path>:0`.
    readLive: async () => {
      const adapter = new KvAdapter(target);
      const live = await adapter.currentVersion();
      if (live === null) return null;
      const index = await adapter.readIndex(live);
      const files = new Map<string, Uint8Array>();
      for (const [key, { blob }] of Object.entries(index.items))
        files.set(key.replace(/:0$/, ''), await readFile(adapter.blobFile(blob)));
      return files;
    },
    plantForeign: async () => {
      await writeFile(join(target, 'versions', 'NOTES.txt'), 'kept by the operator');
      return async () =>
        (await readFile(join(target, 'versions', 'NOTES.txt'), 'utf8')) === 'kept by the operator';
    },
  });
  expect(report.failures).toEqual([]);
  expect(report.passed).toHaveLength(8);
});
