/**
 * Does a plan fit the world it is about to run in? A plan assigns buckets to ranks of the world
 * it was made for; run in another world, ranks would wait for buckets nobody sends or miss
 * tensors their adapter needs, and fail late with a message about an entry. Checked once, here,
 * before anything moves (by `hotweights replicate`, its rank processes and `hotweights worker`),
 * with one line that says what to re-plan.
 */
import { ConfigError, type Plan } from '@hotweights/core';

export interface PlanWorld {
  readonly worldSize: number;
  /** This process's rank, when it is one rank of the world. */
  readonly rank?: number | undefined;
  /** Where the plan came from (its file), for the message. */
  readonly source?: string | undefined;
}

export interface PlanWorldCheck {
  /**
   * Require the plan's recorded world size to equal the world's (default true). The Replicator
   * checks routes that narrow a world (a late joiner reading alone) with false: ranks only.
   */
  readonly exactWorldSize?: boolean;
}

/** Throws a ConfigError naming the mismatch and the re-plan that fixes it. */
export function checkPlanWorld(plan: Plan, world: PlanWorld, check: PlanWorldCheck = {}): void {
  const { worldSize, rank } = world;
  const what = world.source ? `plan ${world.source}` : `plan ${plan.version}`;
  const replan = `re-plan with \`hotweights plan … --world-size ${worldSize}\``;
  if (!Number.isInteger(worldSize) || worldSize < 1) {
    throw new ConfigError(`world size ${worldSize} is not a positive integer`);
  }
  if (rank !== undefined && (!Number.isInteger(rank) || rank < 0 || rank >= worldSize)) {
    throw new ConfigError(`rank ${rank} is not in 0..${worldSize - 1} (world size ${worldSize})`);
  }
  if ((check.exactWorldSize ?? true) && plan.world_size !== null && plan.world_size !== worldSize) {
    throw new ConfigError(
      `${what} was made for world size ${plan.world_size}, but this job has ${worldSize} rank(s): ${replan}, or run it with world size ${plan.world_size}`,
    );
  }
  if (plan.source.rank >= worldSize) {
    throw new ConfigError(
      `${what}: source rank ${plan.source.rank} is outside the world of ${worldSize} ranks: ${replan} --source-rank <r below ${worldSize}>`,
    );
  }
  for (const b of plan.buckets) {
    const outside = b.consumer_ranks.find((r) => r >= worldSize);
    if (outside !== undefined) {
      throw new ConfigError(
        `${what}: bucket ${b.bucket_id} is consumed by rank ${outside}, outside the world of ${worldSize} ranks (plan made for world_size ${plan.world_size ?? 'unknown'}): ${replan}`,
      );
    }
  }
}
