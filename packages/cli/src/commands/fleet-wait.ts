/**
 * Waiting on the fleet: `begin --wait` and `rollback --endpoint … --wait` return success only once
 * the update is committed AND every rank of the fleet reports the new version live (read from its
 * adapter); otherwise they fail naming the ranks behind.
 */
import type { CoordinatorClient, CoordinatorStatus, UpdateView } from '@hotweights/coordinator';
import { CoordinatorError, TimeoutError } from '@hotweights/core';

const POLL_MS = 100;

/** Polls until the update begun at `begunAt` is committed or aborted. */
export async function waitForOutcome(
  client: CoordinatorClient,
  u: UpdateView,
  deadline: number,
  waited: string,
  onPoll?: (u: UpdateView) => void | Promise<void>,
): Promise<UpdateView> {
  let cur = u;
  while (cur.state !== 'committed' && cur.state !== 'aborted') {
    if (Date.now() > deadline) {
      throw new TimeoutError(`update ${u.version} is still ${cur.state} after ${waited} s`);
    }
    await onPoll?.(cur);
    await new Promise((r) => setTimeout(r, POLL_MS));
    const found = (await client.getUpdate(u.version)).update;
    if (found && found.begun_at === u.begun_at) cur = found;
    else if (found)
      throw new CoordinatorError('HW_COORD_REFUSED', `update ${u.version} was replaced while waiting`);
  }
  return cur;
}

/** Polls until every rank of the fleet is live on `version`; throws naming the ranks behind. */
export async function waitForFleet(
  client: CoordinatorClient,
  version: string,
  deadline: number,
  waited: string,
): Promise<CoordinatorStatus> {
  for (;;) {
    const s = await client.status();
    if (s.current_version !== version) {
      throw new CoordinatorError(
        'HW_FLEET_BEHIND',
        `the current version moved to ${s.current_version ?? 'none'} while waiting for the fleet to reach ${version}`,
      );
    }
    if (s.fleet.behind.length === 0) return s;
    if (Date.now() > deadline) {
      throw new CoordinatorError(
        'HW_FLEET_BEHIND',
        `update ${version} is committed but the fleet is not live on it after ${waited} s: ${s.fleet.summary}; see \`hotweights coord-status\``,
        { details: { behind: s.fleet.behind } },
      );
    }
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
}
