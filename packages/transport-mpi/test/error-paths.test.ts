/** The MPI transport's error paths under a real mpirun: each ends in a named error or a failed job. */
import { describe, expect, it } from 'vitest';
import { jsonLines, mpirun, SOURCE_NODE_ARGS } from './mpirun.js';

const FIXTURE = 'test/fixtures/error-paths-rank.ts';

interface Line {
  readonly rank: number;
  readonly done?: boolean;
  readonly name?: string;
  readonly code?: string;
  readonly error?: string;
}

async function job(ranks: number, env: NodeJS.ProcessEnv) {
  const r = await mpirun(ranks, ['node', ...SOURCE_NODE_ARGS, FIXTURE], { env, timeoutMs: 90_000 });
  const lines = jsonLines<Line>(r.stdout).sort((a, b) => a.rank - b.rank);
  return { ...r, lines };
}

describe('MPI transport error paths', () => {
  it('a HOTWEIGHTS_MPI_LIBRARY that is missing or not MPI is refused on every rank, naming the library', async () => {
    const missing = await job(2, {
      HW_TEST_ERROR_PATH: 'bad-library',
      HOTWEIGHTS_MPI_LIBRARY: 'libmpi-absent.so.40',
    });
    expect(missing.signal).toBeNull();
    expect(missing.lines).toEqual(
      [0, 1].map((rank) => ({
        rank,
        name: 'TransportError',
        code: 'HW_TRANSPORT',
        error: 'the mpi transport is unavailable: libmpi-absent.so.40 not found',
      })),
    );
    const notMpi = await job(1, { HW_TEST_ERROR_PATH: 'bad-library', HOTWEIGHTS_MPI_LIBRARY: 'libz.so.1' });
    expect(notMpi.lines).toEqual([
      {
        rank: 0,
        name: 'TransportError',
        code: 'HW_TRANSPORT',
        error: 'the mpi transport is unavailable: libz.so.1 is not an MPI library (no MPI_Init_thread)',
      },
    ]);
  }, 120_000);

  it('a broadcast after close is refused with a named error, and the job still ends cleanly', async () => {
    const r = await job(2, { HW_TEST_ERROR_PATH: 'after-close' });
    expect(r.signal).toBeNull();
    expect(r.code).toBe(0);
    expect(r.lines).toEqual(
      [0, 1].map((rank) => ({
        rank,
        name: 'TransportError',
        code: 'HW_TRANSPORT',
        error: 'bucket 5: the MPI transport is closed',
      })),
    );
  }, 120_000);

  it('ranks that disagree on a bucket size all refuse it with a named error naming the sizes, and go on', async () => {
    const r = await job(3, { HW_TEST_ERROR_PATH: 'size-mismatch', HOTWEIGHTS_TRANSFER_TIMEOUT_S: '60' });
    expect(r.signal).toBeNull(); // mpirun ended by itself, not by the test's kill
    expect(r.code, r.stderr).toBe(0);
    expect(r.lines).toEqual(
      [0, 1, 2].map((rank) => ({
        rank,
        name: 'TransportError',
        code: 'HW_TRANSPORT_INVALID',
        error: `MPI: bucket 1 (${rank === 2 ? 1024 : 4096} B from rank 0 to [0,1,2]) refused on rank ${rank}: the ranks disagree on the size: the root (rank 0) sends 4096 B, rank 2 holds 1024 B; every participant must pass a buffer of the bucket's size`,
        untouched: true,
        next: true,
      })),
    );
  }, 120_000);
});
