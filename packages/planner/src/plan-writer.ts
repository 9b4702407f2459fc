/**
 * writePlan: plan JSON that people can read (one item per line), written as bytes in one pass
 * (see plan-text.ts; a plan from createPlan reuses the bytes made for its digest). Atomic: temp file + rename.
 */
import type { Plan } from '@hotweights/core';
import { writeAtomically } from './atomic-write.js';
import { planFileBytes, rememberedEncoding } from './plan-text.js';

export async function writePlan(plan: Plan, path: string): Promise<void> {
  await writeAtomically(path, [planFileBytes(plan, rememberedEncoding(plan))]);
}
