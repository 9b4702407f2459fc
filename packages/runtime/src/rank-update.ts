/**
 * One rank's whole update under a launcher (the local launcher, mpirun, torchrun): the update
 * pipeline (`stageUpdate`: replicate, verify, prepare) -> the commit vote over the transport ->
 * commit on every rank, or discard everywhere. The live version changes only after every rank
 * voted ready; any failure before that leaves it untouched and releases this rank's staging.
 * (The worker agent runs the same pipeline but precommits to the coordinator instead of voting.)
 */

import { CommitError } from '@hotweights/core';
import { voteOnCommit } from './commit-vote.js';
import type { RankReport } from './replicator.js';
import { type StageUpdateOptions, stageUpdate } from './stage-update.js';

export interface RankUpdateOptions extends Omit<StageUpdateOptions, 'route' | 'keepStaged'> {
  /** Commit after a unanimous vote (false: stage, verify, prepare, then discard). */
  readonly commit: boolean;
}

export interface RankUpdateResult {
  readonly report: RankReport;
  readonly committed: boolean;
  /** Version live on this rank's adapter afterwards. */
  readonly live: string | null;
  /** Seconds the adapter took to make the new version live (the serving pause). */
  readonly commitSeconds: number;
}

export async function runRankUpdate(o: RankUpdateOptions): Promise<RankUpdateResult> {
  const staged = await stageUpdate(o);
  try {
    if (!o.commit) {
      await staged.discard();
      return {
        report: staged.report,
        committed: false,
        live: await o.adapter.currentVersion(),
        commitSeconds: 0,
      };
    }
    const vote = await voteOnCommit({
      plan: o.plan,
      transport: o.transport,
      ready: true,
      timeoutS: o.config.transferTimeoutS,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    if (!vote.ready) {
      throw new CommitError(
        `rank(s) ${vote.refused.join(', ')} were not ready for ${o.plan.version}; nothing is committed`,
      );
    }
    const { live, commitSeconds } = await staged.commit();
    return { report: staged.report, committed: true, live, commitSeconds };
  } catch (err) {
    await staged.discard().catch(() => {});
    throw err;
  }
}
