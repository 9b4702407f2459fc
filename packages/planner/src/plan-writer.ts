/**
 * writePlan: plan JSON that people can read (one item per line), written as bytes in one pass
 * (see plan-text.ts; a plan from createPlan reuses the bytes made for its digest). Atomic: temp file + rename.
 */
import type { Plan } from '@hotweights/core';
import { type StagedFile, stageAtomically } from './atomic-write.js';
import { planFileChunks, rememberedEncoding } from './plan-text.js';

export async function writePlan(plan: Plan, path: string): Promise<void> {
  await stagePlan(plan, path).commit();
}

/**
 * Starts writing the plan file beside `path` and returns at once (see stageAtomically): a caller
 * that checks the plan or its manifests before publishing it overlaps those checks with the write,
 * then commits (the file appears at `path`) or discards it.
 */
export function stagePlan(plan: Plan, path: string): StagedFile {
  // The 34 MB of a million-entry plan's text go out as encoded: no joined copy.
  return stageAtomically(path, planFileChunks(plan, rememberedEncoding(plan)));
}
