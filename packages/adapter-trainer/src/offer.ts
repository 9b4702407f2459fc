/**
 * offer.json, what the training process reads (see python/src/hotweights_trainer/offer.py): this
 * rank's staged buckets as shared-memory segments, each with its plan tensor items.
 */
import {
  AdapterError,
  type Plan,
  type StagedSegment,
  type StagingAgent,
  stagedSegments,
} from '@hotweights/core';

export const OFFER_SCHEMA = 'hotweights.trainer.offer';
export const OFFER_VERSION = 1;

export interface Offer {
  readonly schema: typeof OFFER_SCHEMA;
  readonly offer_version: typeof OFFER_VERSION;
  readonly txn: string;
  readonly version: string;
  readonly segments: readonly StagedSegment[];
}

export function buildOffer(plan: Plan, staging: StagingAgent, rank: number, txn: string): Offer {
  const segments = stagedSegments(plan, staging, rank, 'trainer');
  return { schema: OFFER_SCHEMA, offer_version: OFFER_VERSION, txn, version: plan.version, segments };
}

/** layout.json: the live model's tensors as the training process reported them. */
export interface Layout {
  readonly tensors: Readonly<Record<string, { readonly dtype: string; readonly shape: readonly number[] }>>;
}

/**
 * Refuses, before this rank votes, an offer whose tensors the live model does not have or whose
 * dtype or shape differ (the training process checks again before it copies anything).
 */
export function checkOffer(offer: Offer, layout: Layout): void {
  const problems = new Set<string>();
  for (const it of offer.segments.flatMap((s) => s.items)) {
    const live = layout.tensors[it.tensor];
    if (!live) problems.add(`${it.tensor}: not in the model`);
    else if (live.dtype !== it.dtype) problems.add(`${it.tensor}: staged ${it.dtype}, live ${live.dtype}`);
    else if (live.shape.join(',') !== it.shape.join(',')) {
      problems.add(`${it.tensor}: staged shape [${it.shape.join(', ')}], live [${live.shape.join(', ')}]`);
    }
  }
  if (problems.size > 0) {
    const list = [...problems];
    throw new AdapterError(
      `version ${offer.version} does not fit the live model of the training process: ${list.slice(0, 8).join('; ')}` +
        `${list.length > 8 ? ` (and ${list.length - 8} more)` : ''}`,
      { code: 'HW_ADAPTER_INVALID' },
    );
  }
}
