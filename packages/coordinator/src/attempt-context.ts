/** What every attempt strategy gets from the agent, and the pipeline options they share (see attempt.ts). */
import type {
  Adapter,
  HotweightsConfig,
  Manifest,
  Plan,
  PlanBucket,
  StagingAgent,
  Transport,
} from '@hotweights/core';
import type { StagedUpdate, StageUpdateOptions } from '@hotweights/runtime';
import type { Registry } from 'prom-client';
import type { CoordinatorClient } from './client.js';

/** What an attempt uses of the agent's options (WorkerAgentOptions extends it). */
export interface AttemptServices {
  readonly config: HotweightsConfig;
  readonly adapter: Adapter;
  readonly staging: StagingAgent;
  /** Opens this rank's transport for one update; every rank of the world gets the same rendezvous. */
  readonly openTransport: (args: {
    plan: Plan;
    rendezvous: Readonly<Record<string, string>>;
  }) => Promise<Transport>;
  readonly metrics?: Registry | undefined;
  /** Check every landed item's hash (default true). */
  readonly verify?: boolean;
}

export interface AttemptContext {
  readonly client: CoordinatorClient;
  readonly services: AttemptServices;
  readonly rank: number;
  readonly worldSize: number;
  readonly nodeId: string;
  /** This worker's id at the coordinator (consumer name for the handles it copies). */
  readonly workerId: string;
  readonly plan: Plan;
  readonly manifest: Manifest | undefined;
  /** The update's begin time: with the version, it names this attempt's handles and rendezvous. */
  readonly begunAt: number | null;
  readonly signal: AbortSignal;
  readonly log: (line: string) => void;
  /** Called with a rendezvous directory this attempt made (removed when the update ends). */
  readonly onRendezvous: (dir: string) => void;
}

export interface AttemptResult {
  readonly staged: StagedUpdate;
  /** Buckets to report as held on this rank (who_has). */
  readonly have: readonly number[];
}

/** Buckets of the plan this rank consumes. */
export function consumedBy(plan: Plan, rank: number): PlanBucket[] {
  return plan.buckets.filter((b) => b.consumer_ranks.includes(rank));
}

/** How often a worker logs the progress of an update in flight. */
const PROGRESS_EVERY_MS = 5_000;

/** The pipeline options every strategy shares; each adds its transport and route. */
export function pipelineOptions(ctx: AttemptContext): Omit<StageUpdateOptions, 'transport'> {
  const s = ctx.services;
  // A long update shows in the worker's log as it goes (a short one only at its end).
  let lastLog = performance.now();
  return {
    onProgress: (p) => {
      const now = performance.now();
      if (now - lastLog < PROGRESS_EVERY_MS || p.bytesTotal === 0) return;
      lastLog = now;
      const rate = p.elapsedS > 0 ? p.bytesDone / p.elapsedS : 0;
      ctx.log(
        `update ${p.version}: ${(p.bytesDone / 2 ** 20).toFixed(1)} of ${(p.bytesTotal / 2 ** 20).toFixed(1)} MiB landed (${Math.floor((100 * p.bytesDone) / p.bytesTotal)}%, ${(rate / 2 ** 20).toFixed(1)} MiB/s)`,
      );
    },
    plan: ctx.plan,
    manifest: ctx.manifest,
    rank: ctx.rank,
    worldSize: ctx.worldSize,
    staging: s.staging,
    adapter: s.adapter,
    config: s.config,
    verify: s.verify ?? true,
    signal: ctx.signal,
    metrics: s.metrics,
    planSource: `${ctx.plan.version} (from the coordinator)`,
  };
}
