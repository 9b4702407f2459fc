/**
 * The transport compliance suite, 2 and 3 processes, over the stand-in device libraries (test
 * doubles of NCCL and the CUDA runtime built by the test; no GPU is involved), both with
 * ncclCommSplit and, as with NCCL < 2.18, with a new communicator per participant set.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { jsonLines, SOURCE_NODE_ARGS, startRanks } from '../../transport-ucx/test/ranks.js';
import { PACKAGE_ROOT } from '../src/native.js';
import { buildStandins } from './standin.js';

interface RankReport {
  rank: number;
  size: number;
  probe: { available: boolean; detail?: string };
  contract: number;
  failures: unknown[];
  passed: string[];
  refused: string[];
}

const standins = buildStandins();
afterAll(() => standins.remove());

describe('compliance suite over the stand-in NCCL and CUDA runtime, between processes', () => {
  for (const [ranks, version, chunkMb] of [
    [2, '21903', '16'],
    [3, '21903', '1'], // 1 MiB chunks: the 8 MiB bucket is staged through the two device slots 9 times
    [3, '21700', '16'], // NCCL 2.17 has no ncclCommSplit: one ncclCommInitRank per participant set
  ] as const) {
    it(`passes with ${ranks} ranks, NCCL ${version}, ${chunkMb} MiB chunks`, async () => {
      const job = await startRanks(ranks, [...SOURCE_NODE_ARGS, 'test/fixtures/compliance-rank.ts'], {
        cwd: PACKAGE_ROOT,
        env: { ...standins.env, STANDIN_NCCL_VERSION: version, HOTWEIGHTS_NCCL_CHUNK_MB: chunkMb },
      });
      const results = await job.done;
      for (const r of results) {
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
      const reports = results.flatMap((r) => jsonLines<RankReport>(r.stdout)).sort((a, b) => a.rank - b.rank);
      expect(reports.map((r) => r.rank)).toEqual([...Array(ranks).keys()]);
      const release = version === '21903' ? '2.19.3' : '2.17.0';
      for (const r of reports) {
        expect(r.size).toBe(ranks);
        const detail = `NCCL ${release}, CUDA runtime 12.4, 1 device(s), ${ranks} ranks, rank 0 at 127.0.0.1:`;
        expect(r.probe.available).toBe(true);
        expect(r.probe.detail?.startsWith(detail), r.probe.detail).toBe(true);
        expect(r.failures).toEqual([]);
        expect(r.contract).toBeGreaterThanOrEqual(3);
        expect(r.passed).toContain('prepare() with every participant set');
        expect(r.passed).toContain('6 broadcasts in flight at once');
        expect(r.passed).toContain('a bucket id used again by a later broadcast carries the new bytes');
        expect(r.passed).toContain('transport still works after an aborted request');
        if (ranks === 3) {
          expect(r.passed).toContain('broadcast 300001 B from rank 0 to [0,2]');
          expect(r.passed).toContain('broadcast 77777 B from rank 1 to [1,2]');
        }
        expect(r.refused).toEqual([
          expect.stringMatching(/^HW_TRANSPORT_INVALID: bucket 1: ranks must be sorted ascending/),
          expect.stringMatching(
            new RegExp(`^HW_TRANSPORT_INVALID: bucket 2: rank ${ranks} is not in the world`),
          ),
          expect.stringMatching(
            /^HW_TRANSPORT_INVALID: bucket 3: root \d+ and this rank \d+ must both be among/,
          ),
          'HW_TRANSPORT_INVALID: bucket 5: data must be a Uint8Array',
          'bucket 4: the NCCL transport is closed',
        ]);
      }
    });
  }

  for (const version of ['21903', '21700']) {
    it(`prepare() twice, the second time with one set more, NCCL ${version}`, async () => {
      const job = await startRanks(3, [...SOURCE_NODE_ARGS, 'test/fixtures/prepare-rank.ts'], {
        cwd: PACKAGE_ROOT,
        env: { ...standins.env, STANDIN_NCCL_VERSION: version },
      });
      const results = await job.done;
      for (const r of results) expect(r.code, r.stderr).toBe(0);
      const got = results.flatMap((r) => jsonLines<{ rank: number; got: object }>(r.stdout));
      expect(got.sort((a, b) => a.rank - b.rank)).toEqual([
        { rank: 0, got: { '0,2': true } },
        { rank: 1, got: { '1,2': true } },
        { rank: 2, got: { '0,2': true, '1,2': true } },
      ]);
    });
  }
});
