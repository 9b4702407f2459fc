import { TransportError } from '@hotweights/core';

/** The error a broadcast rejects with when its signal aborts (the signal's reason when it is one). */
export function abortReason(signal: AbortSignal): Error {
  const r = signal.reason as unknown;
  return r instanceof Error ? r : new TransportError(`broadcast aborted: ${String(r)}`);
}
