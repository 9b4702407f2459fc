/**
 * Checks every transport makes on a broadcast request before it touches a peer, so that bad
 * input fails the same way (same code, same words) whichever transport runs.
 */
import { TransportError } from './errors.js';
import type { BroadcastRequest } from './transport.js';

/** Throws HW_TRANSPORT_INVALID unless `ranks` are world ranks, sorted ascending without repeats. */
export function checkParticipants(ranks: readonly number[], worldSize: number, what: string): void {
  for (let i = 0; i < ranks.length; i++) {
    const r = ranks[i] as number;
    if (!Number.isInteger(r) || r < 0 || r >= worldSize) {
      throw new TransportError(`${what}: rank ${String(r)} is not in the world of ${worldSize} ranks`, {
        code: 'HW_TRANSPORT_INVALID',
      });
    }
    if (i > 0 && r <= (ranks[i - 1] as number)) {
      throw new TransportError(`${what}: ranks must be sorted ascending without repeats (got [${ranks}])`, {
        code: 'HW_TRANSPORT_INVALID',
      });
    }
  }
}

/**
 * The checks of a whole request, for `rank` of a world of `worldSize`: participants as above, the
 * root and this rank among them, and the data a Uint8Array. Throws HW_TRANSPORT_INVALID naming
 * the bucket, so a transport calls it first and never sends a peer a request it cannot serve.
 */
export function checkBroadcastRequest(request: BroadcastRequest, rank: number, worldSize: number): void {
  const { bucketId, root, ranks, data } = request;
  const what = `bucket ${bucketId}`;
  checkParticipants(ranks, worldSize, what);
  if (!ranks.includes(root) || !ranks.includes(rank)) {
    throw new TransportError(
      `${what}: root ${root} and this rank ${rank} must both be among the participants [${ranks}]`,
      { code: 'HW_TRANSPORT_INVALID' },
    );
  }
  if (!(data instanceof Uint8Array)) {
    throw new TransportError(`${what}: data must be a Uint8Array`, { code: 'HW_TRANSPORT_INVALID' });
  }
}

/** The error a broadcast rejects with when its signal aborts (the signal's reason when it is one). */
export function signalReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error(String(r ?? 'aborted'));
}
