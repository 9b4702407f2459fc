import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { jsonLines, mpirun, SOURCE_NODE_ARGS } from './mpirun.js';

interface RankReport {
  rank: number;
  size: number;
  probe: { available: boolean; detail?: string };
  contract: number;
  passed: string[];
  refused: string[];
}

const FIXTURE = 'test/fixtures/compliance-rank.ts';

describe('core compliance suite under a real mpirun', () => {
  for (const [ranks, chunkMb] of [
    [2, '16'],
    [3, '16'],
    [3, '1'], // 1 MiB chunks: the 8 MiB bucket goes out as 9 pipelined MPI_Bcast calls
  ] as const) {
    it(`passes with mpirun -n ${ranks} and ${chunkMb} MiB chunks`, async () => {
      const job = await mpirun(ranks, ['node', ...SOURCE_NODE_ARGS, FIXTURE], {
        env: { HOTWEIGHTS_MPI_CHUNK_MB: chunkMb },
        timeoutMs: 90_000,
      });
      expect(job.stderr).not.toMatch(/rank \d+: /);
      expect(job.code).toBe(0);
      const reports = jsonLines<RankReport>(job.stdout).sort((a, b) => a.rank - b.rank);
      expect(reports.map((r) => r.rank)).toEqual([...Array(ranks).keys()]);
      for (const r of reports) {
        expect(r.size).toBe(ranks);
        expect(r.probe).toEqual({ available: true, detail: expect.stringMatching(/^Open MPI v\d/) });
        expect(r.contract).toBeGreaterThanOrEqual(5);
        expect(r.passed).toContain('6 broadcasts in flight at once');
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
          'bucket 4: the MPI transport is closed',
        ]);
      }
    }, 120_000);
  }

  it('keeps the event loop running while a broadcast is pending', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hw-mpi-loop-'));
    try {
      const job = await mpirun(2, ['node', ...SOURCE_NODE_ARGS, 'test/fixtures/responsive-rank.ts'], {
        env: { HW_TEST_DIR: dir },
        timeoutMs: 90_000,
      });
      expect(job.code, job.stderr).toBe(0);
      expect(jsonLines(job.stdout)).toEqual([{ rank: 1, firedWhilePending: true, identical: true }]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
