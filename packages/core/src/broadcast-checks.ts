/**
 * Checks every transport makes on a broadcast request before it touches a peer, so that bad
 * input fails the same way (same code, same words) whichever transport runs.
 */
import { TransportError } from './errors.js';

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

/** The error a broadcast rejects with when its signal aborts (the signal's reason when it is one). */
export function signalReason(signal: AbortSignal): Error {
  const r: unknown = signal.reason;
  return r instanceof Error ? r : new Error(String(r ?? 'aborted'));
}
