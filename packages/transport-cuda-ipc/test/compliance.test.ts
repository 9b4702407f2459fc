/**
 * The transport compliance suite over the CUDA-IPC transport in 2 and 3 real processes, with the
 * driver API served by the stand-in (a test double over host memory: no GPU ran here).
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkProviderContract } from '@hotweights/compliance';
import { loadConfig } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';
import { spawnRank } from '../../runtime/test/spawn-ranks.js';
import { cudaIpcTransportProvider } from '../src/provider.js';
import { standInEnv } from './stand-in.js';

const RANK_SCRIPT = fileURLToPath(new URL('./fixtures/cuda-compliance-rank.ts', import.meta.url));
const root = mkdtempSync(join('/dev/shm', 'hw-cuda-ipc-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

function standInSegments(): string[] {
  return readdirSync('/dev/shm').filter((n) => n.startsWith('hwcuda-standin.'));
}

describe('cuda-ipc transport over the driver stand-in', { timeout: 120_000 }, () => {
  it('keeps the provider contract (priority 50, creates and closes alone)', async () => {
    const config = loadConfig(standInEnv());
    const report = await checkProviderContract(
      cudaIpcTransportProvider,
      { rank: 0, worldSize: 1, launcher: 'none', config },
      { rank: 0, worldSize: 1, config },
    );
    expect(report.failures).toEqual([]);
    expect(report.passed).toContain('create() returns a transport and close() is idempotent');
    expect(cudaIpcTransportProvider.priority).toBe(50);
  });

  it.each([2, 3])(
    'passes the rank compliance suite and a device-to-device broadcast in %i processes',
    async (worldSize) => {
      const before = new Set(standInSegments());
      const dir = mkdtempSync(join(root, 'rdv-'));
      const ranks = Array.from({ length: worldSize }, (_, rank) =>
        spawnRank(RANK_SCRIPT, [dir, String(rank), String(worldSize)], standInEnv()),
      );
      const results = await Promise.all(ranks.map(async (s, rank) => ({ rank, ...(await s.done) })));
      for (const r of results) {
        expect(r.stderr).toBe('');
        const out = JSON.parse(r.stdout);
        expect(out.error).toBeUndefined();
        expect(out).toMatchObject({ rank: r.rank, deviceBytes: 3 * 2 ** 20 + 7 });
        expect(out.passed).toBeGreaterThan(0);
        expect(r.code).toBe(0);
      }
      // Nothing left behind: no headers or acks, no device segments of these ranks.
      expect(readdirSync(dir).filter((n) => !/^rank\.\d+\.pid$/.test(n))).toEqual([]);
      expect(standInSegments().filter((n) => !before.has(n))).toEqual([]);
    },
  );
});
