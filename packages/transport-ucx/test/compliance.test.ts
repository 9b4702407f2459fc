import { describe, expect, it } from 'vitest';
import { jsonLines, ourErrors, SOURCE_NODE_ARGS, startRanks } from './ranks.js';

interface RankReport {
  rank: number;
  size: number;
  probe: { available: boolean; detail?: string };
  contract: number;
  passed: string[];
  refused: string[];
}

describe('core compliance suite over real UCX between processes on 127.0.0.1', () => {
  for (const [ranks, chunkMb, tls] of [
    [2, '8', undefined],
    [3, '8', undefined],
    [3, '1', 'tcp'], // 1 MiB chunks over TCP: the 8 MiB bucket is forwarded as 9 pipelined chunks
  ] as const) {
    it(`passes with ${ranks} ranks, ${chunkMb} MiB chunks${tls ? `, UCX_TLS=${tls}` : ''}`, async () => {
      const job = await startRanks(ranks, [...SOURCE_NODE_ARGS, 'test/fixtures/compliance-rank.ts'], {
        env: { HOTWEIGHTS_UCX_CHUNK_MB: chunkMb, ...(tls ? { UCX_TLS: tls } : {}) },
      });
      const results = await job.done;
      for (const r of results) {
        expect(ourErrors(r.stderr)).toBe('');
        expect(r.code).toBe(0);
      }
      const reports = results.flatMap((r) => jsonLines<RankReport>(r.stdout)).sort((a, b) => a.rank - b.rank);
      expect(reports.map((r) => r.rank)).toEqual([...Array(ranks).keys()]);
      for (const r of reports) {
        expect(r.size).toBe(ranks);
        expect(r.probe).toEqual({
          available: true,
          detail: expect.stringMatching(/^UCX 1\.\d+\.\d+, \d ranks, rank 0/),
        });
        expect(r.contract).toBeGreaterThanOrEqual(3);
        expect(r.passed).toContain('6 broadcasts in flight at once');
        expect(r.passed).toContain('a bucket id used again by a later broadcast carries the new bytes');
        expect(r.passed).toContain('transport still works after an aborted request');
        if (ranks === 3) expect(r.passed).toContain('broadcast 300001 B from rank 0 to [0,2]');
        expect(r.refused).toEqual([
          expect.stringMatching(/^HW_TRANSPORT_INVALID: bucket 1: ranks must be sorted ascending/),
          expect.stringMatching(
            new RegExp(`^HW_TRANSPORT_INVALID: bucket 2: rank ${ranks} is not in the world`),
          ),
          expect.stringMatching(
            /^HW_TRANSPORT_INVALID: bucket 3: root \d+ and this rank \d+ must both be among/,
          ),
          'HW_TRANSPORT_INVALID: bucket 5: data must be a Uint8Array',
          'bucket 4: the UCX transport is closed',
        ]);
      }
    });
  }
});
