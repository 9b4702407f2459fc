/**
 * writePlan: plan JSON that people can read (one item per line), written as bytes in one pass
 * (see plan-text.ts; a plan from createPlan reuses the bytes made for its digest). Atomic: temp file + rename.
 */
import type { Plan } from '@hotweights/core';
import { writeAtomically } from './atomic-write.js';
import { planFileChunks, rememberedEncoding } from './plan-text.js';

export async function writePlan(plan: Plan, path: string): Promise<void> {
  // The 34 MB of a million-entry plan's text go out as encoded: no joined copy.
  await writeAtomically(path, planFileChunks(plan, rememberedEncoding(plan)));
}
