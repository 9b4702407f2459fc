/**
 * Checks made before `replicate` moves a byte: the plan passes the same verification as
 * `verify-plan` (a hand-edited plan or an unknown hash algorithm is refused with its findings), and
 * a plan for more ranks than one host can run is refused before any process is started.
 */
import { ConfigError, type Plan, PlanVerificationError } from '@hotweights/core';
import { verifyPlan } from '@hotweights/planner';

/** The most rank processes `replicate` starts on one host (also the --world-size limit). */
export const MAX_LOCAL_RANKS = 1024;

export function preflightReplicate(
  plan: Plan,
  planFile: string,
  worldSize: number,
  launchingHere: boolean,
): void {
  if (launchingHere && worldSize > MAX_LOCAL_RANKS) {
    throw new ConfigError(
      `${planFile} is for ${worldSize} ranks; replicate starts at most ${MAX_LOCAL_RANKS} on one host: pass --world-size N, or start the ranks with mpirun/torchrun`,
    );
  }
  // As verify-plan does by default: against the plan's own world (a smaller --world-size is
  // reported by the Replicator, naming the bucket and rank outside it).
  const report = verifyPlan(plan);
  if (!report.ok) {
    throw new PlanVerificationError(
      report.problems.map(
        (p) => `${planFile}: [${p.check}] ${p.message} (run \`hotweights verify-plan --plan ${planFile}\`)`,
      ),
    );
  }
}
