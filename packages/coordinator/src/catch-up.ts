/**
 * Catching up: a rank that has nothing of a version the fleet needs (a new or replacement worker
 * with an empty target, a restarted worker whose preparation is gone, a rank of a fleet rollback
 * that no longer keeps the version) stages the whole version from the source checkpoint itself:
 * a full plan of the coordinator's manifest for that version, read and verified through the
 * from-source attempt, as a late joiner does. The caller commits or discards the result.
 */
import { CoordinatorError, type Manifest, type Plan } from '@hotweights/core';
import { validateManifest } from '@hotweights/manifest';
import type { StagedUpdate } from '@hotweights/runtime';
import type { AttemptContext } from './attempt.js';
import { fromSourceAttempt } from './attempt-from-source.js';

/** Makes a full plan (no previous version) of `manifest`, read from `plan`'s source checkpoint. */
export type PlanCatchUp = (args: {
  plan: Plan;
  manifest: Manifest;
  worldSize: number;
}) => Plan | Promise<Plan>;

export async function stageCatchUp(
  ctx: Omit<AttemptContext, 'plan' | 'manifest' | 'begunAt'>,
  version: string,
  opts: {
    readonly planCatchUp?: PlanCatchUp | undefined;
    readonly loadManifest?: ((plan: Plan) => Promise<Manifest | undefined>) | undefined;
  },
): Promise<StagedUpdate> {
  const { plan, manifest: doc } = await ctx.client.getPlan(version, { withManifest: true });
  const manifest = doc
    ? validateManifest(doc, `coordinator manifest ${version}`)
    : await opts.loadManifest?.(plan);
  if (!manifest) {
    throw new CoordinatorError(
      'HW_COORD_CATCH_UP',
      `cannot catch up to ${version}: the coordinator holds no manifest for it and ${plan.next_manifest.path ?? 'the plan'} names none readable here`,
    );
  }
  let full = plan;
  if (plan.prev_version !== null) {
    if (!opts.planCatchUp) {
      throw new CoordinatorError(
        'HW_COORD_CATCH_UP',
        `cannot catch up to ${version}: its plan is a delta from ${plan.prev_version} and this worker cannot plan a full update`,
      );
    }
    full = await opts.planCatchUp({ plan, manifest, worldSize: ctx.worldSize });
  }
  ctx.log(`catching up to ${version}: staging the whole version from the source (${full.source.root})`);
  const { staged } = await fromSourceAttempt({ ...ctx, plan: full, manifest, begunAt: null });
  return staged;
}
