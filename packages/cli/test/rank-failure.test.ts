/**
 * The error `hotweights replicate` reports when ranks it started failed names the rank that
 * failed first: a rank killed outright, not a rank the launcher then stopped (whose own error is
 * fallout of the stop).
 */
import type { LocalRankExit } from '@hotweights/runtime';
import { describe, expect, it } from 'vitest';
import { killedNote, rootCause } from '../src/rank-failure.js';

function exit(rank: number, fields: Partial<LocalRankExit>): LocalRankExit {
  return { rank, code: 1, signal: null, events: [], stderr: '', stopped: false, ...fields };
}

describe('rootCause', () => {
  it('a rank killed mid-update is the cause, even when a stopped rank reports an adapter error', () => {
    const exits = [
      exit(0, {
        stopped: true,
        events: [
          { type: 'error', rank: 0, code: 'HW_ADAPTER', message: 'rank 0: received SIGTERM while landing' },
        ],
      }),
      exit(1, { code: null, signal: 'SIGKILL' }),
      exit(2, {
        stopped: true,
        events: [{ type: 'error', rank: 2, code: 'HW_INTERNAL', message: 'received SIGTERM' }],
      }),
    ];
    expect(rootCause(exits)).toBe('rank 1 died (SIGKILL) during the update');
  });

  it('bad bytes on a rank that was not stopped come before the others’ transport fallout', () => {
    const exits = [
      exit(0, {
        events: [{ type: 'error', rank: 0, code: 'HW_TRANSPORT', message: 'local: rank 2 (pid 9) exited' }],
      }),
      exit(2, {
        events: [{ type: 'error', rank: 2, code: 'HW_VERIFY', message: 'rank 2: item a does not match' }],
      }),
    ];
    expect(rootCause(exits)).toBe('rank 2: item a does not match');
  });

  it("the launcher's own kill after the grace is not a crash", () => {
    const exits = [
      exit(0, {
        events: [{ type: 'error', rank: 0, code: 'HW_CHECKPOINT', message: 'rank 0: checkpoint changed' }],
      }),
      exit(1, { code: null, signal: 'SIGKILL', stopped: true }),
    ];
    expect(rootCause(exits)).toBe('rank 0: checkpoint changed');
  });
});

describe('killedNote', () => {
  it('names the ranks the launcher had to kill after the grace, and only those', () => {
    const exits = [
      exit(0, { code: null, signal: 'SIGKILL', stopped: true }),
      exit(1, { code: 1 }),
      exit(2, { code: null, signal: 'SIGTERM', stopped: true }),
    ];
    expect(killedNote(exits, 4000)).toMatch(/^; rank\(s\) 0 did not stop within 4 s and were killed: /);
    expect(killedNote([exit(0, { code: null, signal: 'SIGTERM', stopped: true })], 4000)).toBe('');
  });
});
