/**
 * The request checks every transport calls before it touches a peer: each bad shape is refused
 * with HW_TRANSPORT_INVALID in the words users see from every transport; good requests pass.
 */
import {
  type BroadcastRequest,
  checkBroadcastRequest,
  checkParticipants,
  TransportError,
} from '@hotweights/core';
import { describe, expect, it } from 'vitest';

const request = (over: Partial<BroadcastRequest>): BroadcastRequest => ({
  bucketId: 7,
  root: 0,
  ranks: [0, 1, 2],
  data: new Uint8Array(4),
  ...over,
});

function refusal(fn: () => void): { code: string; message: string } {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(TransportError);
    return { code: (err as TransportError).code, message: (err as Error).message };
  }
  throw new Error('not refused');
}

describe('checkBroadcastRequest', () => {
  it('passes a request from any participating root to a sorted subset that holds this rank', () => {
    expect(() => checkBroadcastRequest(request({}), 1, 3)).not.toThrow();
    expect(() => checkBroadcastRequest(request({ root: 2, ranks: [1, 2] }), 1, 3)).not.toThrow();
    expect(() =>
      checkBroadcastRequest(request({ root: 0, ranks: [0], data: new Uint8Array(0) }), 0, 1),
    ).not.toThrow();
  });

  it.each([
    [
      'ranks out of order',
      request({ ranks: [0, 2, 1] }),
      'bucket 7: ranks must be sorted ascending without repeats (got [0,2,1])',
    ],
    [
      'a repeated rank',
      request({ ranks: [0, 1, 1] }),
      'bucket 7: ranks must be sorted ascending without repeats (got [0,1,1])',
    ],
    [
      'a rank outside the world',
      request({ ranks: [0, 1, 3] }),
      'bucket 7: rank 3 is not in the world of 3 ranks',
    ],
    ['a negative rank', request({ ranks: [-1, 0, 1] }), 'bucket 7: rank -1 is not in the world of 3 ranks'],
    ['a fractional rank', request({ ranks: [0, 0.5] }), 'bucket 7: rank 0.5 is not in the world of 3 ranks'],
    [
      'a root that is not a participant',
      request({ root: 2, ranks: [0, 1] }),
      'bucket 7: root 2 and this rank 1 must both be among the participants [0,1]',
    ],
    [
      'this rank not a participant',
      request({ root: 0, ranks: [0, 2] }),
      'bucket 7: root 0 and this rank 1 must both be among the participants [0,2]',
    ],
    [
      'data that is not a Uint8Array',
      request({ data: [1, 2] as unknown as Uint8Array }),
      'bucket 7: data must be a Uint8Array',
    ],
  ])('refuses %s with HW_TRANSPORT_INVALID', (_, bad, message) => {
    expect(refusal(() => checkBroadcastRequest(bad, 1, 3))).toEqual({
      code: 'HW_TRANSPORT_INVALID',
      message,
    });
  });

  it('checks participants with the caller naming what it checks (prepare, barrier)', () => {
    expect(() => checkParticipants([0, 1], 2, 'prepare')).not.toThrow();
    expect(refusal(() => checkParticipants([1, 0], 2, 'prepare')).message).toBe(
      'prepare: ranks must be sorted ascending without repeats (got [1,0])',
    );
  });
});
