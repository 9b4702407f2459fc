/**
 * Failure paths through the stand-in device libraries (test doubles of NCCL and the CUDA runtime;
 * their own variables inject the faults, on one rank): a rank that dies or stalls in the middle of
 * a bucket, and a device without memory for the staging slots. Every rank must fail with an error
 * that says what happened, and every process must end (no thread left waiting on a dead peer).
 */
import { afterAll, describe, expect, it } from 'vitest';
import { jsonLines, SOURCE_NODE_ARGS, startRanks } from '../../transport-ucx/test/ranks.js';
import { PACKAGE_ROOT } from '../src/native.js';
import { buildStandins } from './standin.js';

interface Outcome {
  rank: number;
  error: string;
  code: string;
  after: string;
  ticks: number;
}

const standins = buildStandins();
afterAll(() => standins.remove());

/** A 3-rank job broadcasting 64 MiB from rank 0 in 4 MiB chunks, with `fault` on rank 2. */
async function run(fault: Record<string, string>, extra: Record<string, string> = {}) {
  const job = await startRanks(3, [...SOURCE_NODE_ARGS, 'test/fixtures/failing-rank.ts'], {
    cwd: PACKAGE_ROOT,
    env: {
      ...standins.env,
      HOTWEIGHTS_NCCL_CHUNK_MB: '4',
      HW_SIZE: String(64 << 20),
      STANDIN_FAULT_RANK: '2',
      ...fault,
      ...extra,
    },
  });
  const results = await job.done;
  const outcomes = new Map(results.flatMap((r) => jsonLines<Outcome>(r.stdout)).map((o) => [o.rank, o]));
  return { results, outcomes };
}

describe('failures over the stand-in NCCL and CUDA runtime', () => {
  it('a rank killed mid-bucket fails the others before the deadline, naming it', async () => {
    // Rank 2 is SIGKILLed once 8 MiB of the 64 MiB bucket reached it.
    const { results, outcomes } = await run({ STANDIN_NCCL_EXIT_AFTER_BYTES: String(8 << 20) });
    expect(results[2]?.signal).toBe('SIGKILL');
    for (const rank of [0, 1]) {
      expect(results[rank]?.code, results[rank]?.stderr).toBe(0);
      const o = outcomes.get(rank) as Outcome;
      // Rank 1 feeds rank 2 and sees the socket die; rank 0 hears it from the control channel.
      expect(o.error).toMatch(/rank 2|ncclRemoteError|remote process exited/);
      expect(o.error).not.toMatch(/did not finish within/); // not the deadline: 120 s by default
      expect(o.after).toMatch(/the NCCL transport is unusable after an earlier failure/);
    }
    // Rank 1 feeds rank 2: its socket fails, or the control star tells it first.
    expect(outcomes.get(1)?.error).toMatch(
      /ncclBroadcast: remote process exited or there was a network error \(ncclResult 6\): rank 1: connection to rank 2 lost while sending|failed on rank 1: nccl: rank 2 is gone \(its control connection dropped without a goodbye\)/,
    );
  });

  it('a rank that stalls mid-bucket fails every rank at the deadline, with ncclCommAbort', async () => {
    const { results, outcomes } = await run(
      { STANDIN_NCCL_STALL_AFTER_BYTES: String(8 << 20) },
      { HOTWEIGHTS_TRANSFER_TIMEOUT_S: '3' },
    );
    for (const rank of [0, 1, 2]) {
      expect(results[rank]?.code, results[rank]?.stderr).toBe(0);
      const o = outcomes.get(rank) as Outcome;
      // The deadline itself, a peer's abort heard on the control channel, or the connection that
      // the aborting peer closed, whichever reaches this rank first.
      expect(o.error).toMatch(
        /^NCCL: bucket 7 \(67108864 B from rank 0 to \[0,1,2\]\) (did not finish within 3 s on rank \d: a peer rank is dead or stuck; the communicators were aborted \(ncclCommAbort\)|failed on rank \d: .*(rank \d aborted the job|connection to rank \d lost))|^nccl: rank \d aborted the job: NCCL: bucket 7/,
      );
    }
    expect(
      [...outcomes.values()].some((o) => o.code === 'HW_TIMEOUT' || /did not finish/.test(o.error)),
    ).toBe(true);
    // The event loop ran on while each broadcast waited for the stalled rank.
    for (const o of outcomes.values()) expect(o.ticks).toBeGreaterThan(0);
  });

  it('a device out of memory fails the bucket with the cudaMalloc error, on every rank', async () => {
    const { results, outcomes } = await run({ STANDIN_CUDA_MEMORY_BYTES: String(1 << 20) });
    for (const rank of [0, 1, 2]) expect(results[rank]?.code, results[rank]?.stderr).toBe(0);
    const oom =
      /cudaMalloc: out of memory \(cudaError 2\) on device 0 while allocating 2 staging slots of 4194304 B; lower HOTWEIGHTS_NCCL_CHUNK_MB or free device memory/;
    expect(outcomes.get(2)?.error).toMatch(oom);
    expect(outcomes.get(2)?.error).toMatch(/^NCCL: bucket 7 .* failed on rank 2: /);
    // The others fail with rank 2's words, heard on the control channel.
    for (const rank of [0, 1]) {
      expect(outcomes.get(rank)?.error).toMatch(
        /rank 2 aborted the job: NCCL: bucket 7 .* failed on rank 2: /,
      );
      expect(outcomes.get(rank)?.error).toMatch(oom);
    }
  });
});
