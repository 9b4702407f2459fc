import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { checkProviderContract } from '@hotweights/compliance';
import { loadConfig, TransportError } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';
import { runRanks, spawnRank } from '../../runtime/test/spawn-ranks.js';
import { LocalTransport, localTransportProvider } from '../src/local-transport.js';

const RANK_SCRIPT = fileURLToPath(new URL('./fixtures/local-compliance-rank.ts', import.meta.url));
const root = mkdtempSync(join('/dev/shm', 'hw-local-test-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
const config = loadConfig({ HOTWEIGHTS_TRANSFER_TIMEOUT_S: '30' });

describe('local transport', { timeout: 120_000 }, () => {
  it('keeps the provider contract', async () => {
    const report = await checkProviderContract(
      localTransportProvider,
      { rank: 0, worldSize: 1, launcher: 'none', config },
      { rank: 0, worldSize: 1, config },
    );
    expect(report.failures).toEqual([]);
    expect(localTransportProvider.priority).toBe(10);
  });

  it.each([2, 3])('passes the rank compliance suite in %i real processes', async (worldSize) => {
    const dir = mkdtempSync(join(root, 'rdv-'));
    const results = await runRanks(worldSize, RANK_SCRIPT, (rank) => [dir, String(rank), String(worldSize)]);
    for (const r of results) {
      expect(r.stderr).toBe('');
      expect(JSON.parse(r.stdout)).toMatchObject({ rank: r.rank });
      expect(JSON.parse(r.stdout).error).toBeUndefined();
      expect(r.code).toBe(0);
    }
    // Nothing left behind but the rank registrations.
    expect(readdirSync(dir).filter((n) => !/^rank\.\d+\.pid$/.test(n))).toEqual([]);
  });

  it('needs a rendezvous dir for more than one rank', async () => {
    await expect(localTransportProvider.create({ rank: 0, worldSize: 2, config })).rejects.toThrowError(
      /rendezvous\.dir/,
    );
  });

  it('fails a broadcast at once when a participant process has exited', async () => {
    const dir = mkdtempSync(join(root, 'dead-'));
    // A peer that registers and exits: rank 1 of 2, started with a script that only creates and quits.
    const peer = spawnRank(fileURLToPath(new URL('./fixtures/local-join-and-exit.ts', import.meta.url)), [
      dir,
      '1',
      '2',
    ]);
    const t = await LocalTransport.create({ rank: 0, worldSize: 2, config, rendezvous: { dir } });
    try {
      await peer.done;
      const err = await t
        .broadcast({ bucketId: 1, root: 0, ranks: [0, 1], data: new Uint8Array(100) })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(TransportError);
      expect((err as Error).message).toMatch(/rank 1 \(pid \d+\) exited/);
    } finally {
      await t.close();
    }
  });
});
