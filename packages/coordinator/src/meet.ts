/**
 * A worker's side of an update's rendezvous (service/rendezvous.ts): post this rank's value under
 * a round and poll until every rank of the world has posted, the deadline passes (the error names
 * the ranks that never came) or the update is aborted. Transports get it as an AddressExchange.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { type AddressExchange, CoordinatorError } from '@hotweights/core';
import type { CoordinatorClient } from './client.js';

const FIRST_POLL_MS = 20;
const MAX_POLL_MS = 250;

export interface MeetOptions {
  readonly client: CoordinatorClient;
  readonly version: string;
  readonly begunAt: number;
  readonly rank: number;
  readonly lease: () => { workerId: string; leaseKey: string } | undefined;
  readonly timeoutS: number;
  readonly signal: AbortSignal;
}

export function updateExchange(o: MeetOptions): AddressExchange {
  return async (round, value) => {
    const deadline = Date.now() + o.timeoutS * 1000;
    let wait = FIRST_POLL_MS;
    for (;;) {
      if (o.signal.aborted) throw o.signal.reason;
      const lease = o.lease();
      if (!lease)
        throw new CoordinatorError('HW_COORD_UNKNOWN_WORKER', 'rendezvous: this worker is not registered');
      const r = await o.client.rendezvous({ ...o, round, value, lease });
      if (r.values) return r.values;
      if (Date.now() >= deadline) {
        throw new CoordinatorError(
          'HW_COORD_RENDEZVOUS',
          `update ${o.version}: rank(s) ${r.missing.join(', ')} never reached the '${round}' rendezvous within ${o.timeoutS} s (is a worker running for each? HOTWEIGHTS_RENDEZVOUS_TIMEOUT_S)`,
          { details: { missing: r.missing, round } },
        );
      }
      await sleep(Math.min(wait, Math.max(1, deadline - Date.now())), undefined, { signal: o.signal }).catch(
        () => {},
      );
      wait = Math.min(MAX_POLL_MS, wait * 2);
    }
  };
}
