import { describe, expect, it } from 'vitest';
import { jsonLines, mpirun, SOURCE_NODE_ARGS } from './mpirun.js';

const FIXTURE = 'test/fixtures/failing-rank.ts';

describe('a misbehaving rank fails the job instead of hanging it', () => {
  it('a stuck root: the others time out with a clear error and MPI_Abort ends the job', async () => {
    const job = await mpirun(3, ['node', ...SOURCE_NODE_ARGS, FIXTURE], {
      env: { HW_TEST_FAILURE: 'stuck', HOTWEIGHTS_TRANSFER_TIMEOUT_S: '2' },
      timeoutMs: 60_000,
    });
    expect(job.signal).toBeNull(); // mpirun ended by itself, not by the test's kill
    expect(job.code).not.toBe(0);
    expect(
      jsonLines<{ rank: number; prepared?: boolean }>(job.stdout).filter((l) => l.prepared),
    ).toHaveLength(3);
    expect(job.stdout).not.toContain('"done":true');
    expect(job.stderr).toMatch(
      /rank [12] failed: MPI: bucket 0 \(33554432 B from rank 0 to \[0,1,2\]\) did not finish within 2 s/,
    );
    // Open MPI's own "MPI_ABORT was invoked" banner is not asserted: mpirun sometimes drops it
    // when two ranks abort at once.
    expect(job.stderr).toMatch(/rank [12] ends the MPI job \(MPI_Abort\): MPI: bucket 0/);
  }, 90_000);

  it('a rank killed mid-broadcast: mpirun reports it and ends every rank', async () => {
    const job = await mpirun(3, ['node', ...SOURCE_NODE_ARGS, FIXTURE], {
      env: { HW_TEST_FAILURE: 'die', HOTWEIGHTS_TRANSFER_TIMEOUT_S: '20' },
      timeoutMs: 60_000,
    });
    expect(job.signal).toBeNull();
    expect(job.code).not.toBe(0);
    expect(job.stderr).toMatch(/process rank 2 with PID \d+ on node \S+ exited on signal 9/);
    // The killed rank never reported completion.
    expect(jsonLines<{ rank: number; done?: boolean }>(job.stdout).some((l) => l.rank === 2 && l.done)).toBe(
      false,
    );
  }, 90_000);
});
