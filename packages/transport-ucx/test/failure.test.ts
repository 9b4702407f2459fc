import { describe, expect, it } from 'vitest';
import { jsonLines, ourErrors, SOURCE_NODE_ARGS, startRanks } from './ranks.js';

interface Report {
  rank: number;
  error: string;
  deadlineHit: boolean;
  after: string;
}

// 1 MiB chunks over TCP keep the 128 MiB bucket in flight long enough to go away in the middle.
const ENV = { UCX_TLS: 'tcp', HOTWEIGHTS_UCX_CHUNK_MB: '1' };

async function run(victim: number, mode: 'kill' | 'abort' | 'stop') {
  const job = await startRanks(3, [...SOURCE_NODE_ARGS, 'test/fixtures/failing-rank.ts'], {
    env: {
      ...ENV,
      HW_VICTIM: String(victim),
      HW_MODE: mode,
      // The silent victim is noticed after this; the other modes must not depend on it.
      HOTWEIGHTS_UCX_PEER_TIMEOUT_S: mode === 'stop' ? '4' : '0',
    },
  });
  if (mode === 'stop') {
    // The stopped victim never exits by itself: end it once the others have reported.
    const victimChild = job.children[victim];
    await Promise.all(
      job.children.filter((c) => c !== victimChild).map((c) => new Promise((r) => c.once('close', r))),
    );
    victimChild?.kill('SIGKILL');
  }
  const results = await job.done;
  return { results, reports: results.flatMap((r) => jsonLines<Report>(r.stdout)) };
}

describe('a peer that goes away mid-broadcast', () => {
  for (const victim of [1, 0]) {
    it(`fails the other ranks naming rank ${victim} when it is killed, before the deadline`, async () => {
      const { results, reports } = await run(victim, 'kill');
      expect(results[victim]?.signal).toBe('SIGKILL');
      const survivors = [0, 1, 2].filter((r) => r !== victim);
      expect(reports.map((r) => r.rank).sort()).toEqual(survivors);
      for (const r of reports) {
        expect(r.error).toMatch(new RegExp(`^bucket 7: rank ${victim} was lost \\(its process exited`));
        expect(r.deadlineHit).toBe(false);
      }
      for (const rank of survivors) {
        expect(results[rank]?.code).toBe(0);
        expect(ourErrors(results[rank]?.stderr ?? '')).toBe('');
      }
    });
  }

  it('fails the other ranks naming a rank that falls silent (stopped, as behind a pulled link), before the deadline', async () => {
    const { results, reports } = await run(2, 'stop');
    expect(reports.map((r) => r.rank).sort()).toEqual([0, 1]);
    for (const r of reports) {
      expect(r.error).toMatch(
        /^bucket 7: rank 2 was lost \(nothing heard from it for \d+\.\d s: its host or the link to it is down\)$/,
      );
      expect(r.deadlineHit).toBe(false);
    }
    for (const rank of [0, 1]) expect(results[rank]?.code).toBe(0);
  });

  it('an abort on one rank rejects the broadcast on the others, naming it, and the next one works', async () => {
    const { results, reports } = await run(2, 'abort');
    expect(reports.map((r) => r.rank).sort()).toEqual([0, 1, 2]);
    for (const r of reports) {
      expect(r.error).toBe(
        r.rank === 2
          ? 'bucket 7: aborted on rank 2: stopped on purpose'
          : 'bucket 7: rank 2 stopped: aborted on rank 2: stopped on purpose',
      );
      expect(r.deadlineHit).toBe(false);
      expect(r.after).toBe('ok');
    }
    for (const r of results) expect(r.code).toBe(0);
  });
});
