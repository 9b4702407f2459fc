/**
 * The plans both patch benchmarks run (run.ts on one host, link.ts across a link): for one
 * learning rate of the generated steps, step 1 deployed in full, and step 1 -> step 2 as a
 * tensor-level delta and as patches, with the time each plan took.
 */
import { join } from 'node:path';
import type { Manifest } from '@hotweights/core';
import { createPlan, publish, writeManifest, writePatches, writePlan } from '@hotweights/planner';

export interface Steps {
  /** step-<n>'s checkpoint folder. */
  readonly dir: (n: number) => string;
  readonly m1: Manifest;
  readonly m2: Manifest;
  /** Seconds publishing step 2 took. */
  readonly publishS: number;
}

/** Publishes steps 1 and 2 of `lr` (manifests written under `work`). */
export async function publishSteps(data: string, lr: string, work: string): Promise<Steps> {
  const dir = (n: number) => join(data, `lr-${lr}`, `step-${n}`);
  const manifests: Manifest[] = [];
  let publishS = 0;
  for (const n of [1, 2]) {
    const t0 = performance.now();
    const m = await publish({ checkpoint: dir(n), version: `s${n}`, modelId: `bench/${lr}` });
    if (n === 2) publishS = (performance.now() - t0) / 1000;
    await writeManifest(m, join(work, `${lr}-s${n}.manifest`));
    manifests.push(m);
  }
  const [m1, m2] = manifests as [Manifest, Manifest];
  return { dir, m1, m2, publishS };
}

export interface StepPlans {
  /** Plan files: step 1 in full, the tensor-level delta, the patches. */
  readonly base: string;
  readonly delta: string;
  readonly patched: string;
  readonly deltaBytes: number;
  readonly patchBytes: number;
  readonly patchItems: number;
  readonly planDeltaS: number;
  readonly planPatchesS: number;
}

/** Writes the three plans for `ranks` ranks under `work`. */
export async function makeStepPlans(
  steps: Steps,
  lr: string,
  work: string,
  ranks: number,
  bucketBytes: number,
): Promise<StepPlans> {
  const { dir, m1, m2 } = steps;
  const common = { bucketBytes, worldSize: ranks };
  const base = join(work, `${lr}-base-${ranks}.json`);
  const delta = join(work, `${lr}-delta-${ranks}.json`);
  const patched = join(work, `${lr}-patches-${ranks}.json`);
  const next = { next: m2, checkpointRoot: dir(2), nextManifestPath: join(work, `${lr}-s2.manifest`) };
  await writePlan(
    createPlan({
      prev: null,
      next: m1,
      checkpointRoot: dir(1),
      nextManifestPath: join(work, `${lr}-s1.manifest`),
      ...common,
    }),
    base,
  );
  let t0 = performance.now();
  const d = createPlan({ prev: m1, ...next, ...common });
  await writePlan(d, delta);
  const planDeltaS = (performance.now() - t0) / 1000;
  t0 = performance.now();
  const patches = await writePatches({
    prev: m1,
    next: m2,
    prevRoot: dir(1),
    nextRoot: dir(2),
    output: `${patched}.patches`,
    maxPatchBytes: bucketBytes,
  });
  const p = createPlan({ prev: m1, ...next, patches, ...common });
  await writePlan(p, patched);
  return {
    base,
    delta,
    patched,
    deltaBytes: d.total_bytes,
    patchBytes: p.total_bytes,
    patchItems: patches.patches.size,
    planDeltaS,
    planPatchesS: (performance.now() - t0) / 1000,
  };
}
