/**
 * The rank suite's bad-request checks, run against one-rank transports built here: one that
 * checks requests with core's checkBroadcastRequest passes; one that serves whatever it is handed,
 * one that refuses without HW_TRANSPORT_INVALID and one that waits on a peer each fail by name.
 */
import { badRequests, ComplianceError, runRankCompliance } from '@hotweights/compliance';
import {
  type BroadcastRequest,
  checkBroadcastRequest,
  type Transport,
  TransportError,
} from '@hotweights/core';
import { describe, expect, it } from 'vitest';

/** A world of one: the root's bytes are already where they belong, so serving is a no-op. */
function alone(check: (request: BroadcastRequest) => Promise<void> | void): Transport {
  return {
    name: 'alone',
    rank: 0,
    worldSize: 1,
    async broadcast(request) {
      if (request.signal?.aborted) throw request.signal.reason;
      await check(request);
    },
    async close() {},
  };
}

const BAD_CHECKS = [
  'refuses a rank outside the world with HW_TRANSPORT_INVALID',
  'refuses a root that is not a participant with HW_TRANSPORT_INVALID',
  'refuses data that is not a Uint8Array with HW_TRANSPORT_INVALID',
];

async function failuresOf(t: Transport): Promise<{ check: string; error: string }[]> {
  const failure = await runRankCompliance(t, { refusalMs: 300 }).catch((err: unknown) => err);
  if (!(failure instanceof ComplianceError)) return [];
  return failure.failures.map((f) => ({ check: f.check, error: f.error }));
}

describe('bad requests in the rank compliance suite', () => {
  it('lists the out-of-order case only where there are two ranks to put out of order', () => {
    expect(badRequests(1).map((b) => b.what)).toEqual([
      'a rank outside the world',
      'a root that is not a participant',
      'data that is not a Uint8Array',
    ]);
    expect(badRequests(3)[0]).toMatchObject({ what: 'ranks out of order', request: { ranks: [2, 1, 0] } });
  });

  it("passes a transport that checks with core's checkBroadcastRequest", async () => {
    const report = await runRankCompliance(alone((r) => checkBroadcastRequest(r, 0, 1)));
    expect(report.passed).toEqual(expect.arrayContaining(BAD_CHECKS));
  });

  it('fails a transport that serves bad requests, naming each', async () => {
    expect(await failuresOf(alone(() => {}))).toEqual(
      BAD_CHECKS.map((check) => ({ check, error: 'the broadcast was served' })),
    );
  });

  it('fails a transport that refuses them without HW_TRANSPORT_INVALID, quoting its error', async () => {
    const loose = await failuresOf(
      alone((r) => {
        try {
          checkBroadcastRequest(r, 0, 1);
        } catch (err) {
          throw new TransportError(`loose: ${(err as Error).message}`);
        }
      }),
    );
    expect(loose.map((f) => f.check)).toEqual(BAD_CHECKS);
    expect(loose[2]?.error).toBe(
      'refused with code HW_TRANSPORT: loose: bucket 5: data must be a Uint8Array',
    );
  });

  it('fails a transport that waits on a peer instead of refusing', async () => {
    const waits = alone(async (r) => {
      if (!(r.data instanceof Uint8Array) || r.ranks.some((x) => x !== 0) || r.root !== 0) {
        await new Promise(() => {}); // waits for a rank that never comes
      }
    });
    const failures = await failuresOf(waits);
    expect(failures.map((f) => f.error)).toEqual(
      BAD_CHECKS.map(() => 'not refused within 300 ms: it waits on a peer'),
    );
  });
});
