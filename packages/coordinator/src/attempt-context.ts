/** What every attempt strategy gets from the agent, and the pipeline options they share (see attempt.ts). */
import type {
  Adapter,
  AddressExchange,
  HotweightsConfig,
  Manifest,
  Plan,
  PlanBucket,
  StagingAgent,
  Transport,
} from '@hotweights/core';
import { type StagedUpdate, type StageUpdateOptions, stageUpdate } from '@hotweights/runtime';
import type { Registry } from 'prom-client';
import type { CoordinatorClient } from './client.js';

/** What an attempt uses of the agent's options (WorkerAgentOptions extends it). */
export interface AttemptServices {
  readonly config: HotweightsConfig;
  readonly adapter: Adapter;
  readonly staging: StagingAgent;
  /**
   * Opens this rank's transport for one update; every rank of the world gets the same rendezvous
   * (`dir` on this host; `host`, this worker's address as its peers reach it). For an update the
   * coordinator runs, `nodes` is every rank's node id (the same list on every rank, so they all
   * choose the same transport) and `exchange` the coordinator's rendezvous for its addresses.
   */
  readonly openTransport: (args: {
    plan: Plan;
    rendezvous: Readonly<Record<string, string>>;
    nodes?: readonly string[] | undefined;
    exchange?: AddressExchange | undefined;
    log?: ((line: string) => void) | undefined;
  }) => Promise<Transport>;
  /**
   * Opens a transport that only fetches, for a rank arriving after the broadcasts of an update the
   * coordinator runs (same arguments as openTransport); undefined when the fleet's transport
   * cannot fetch. Absent: such a rank copies from a peer on its node or reads the source.
   */
  readonly openFetchTransport?: (args: {
    plan: Plan;
    rendezvous: Readonly<Record<string, string>>;
    nodes: readonly string[];
    exchange: AddressExchange;
    log?: ((line: string) => void) | undefined;
  }) => Promise<Transport | undefined>;
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
  /**
   * Takes this rank's transport when it keeps serving the update's buckets to ranks that come
   * after the broadcasts; the agent closes it when the update ends. Absent: close it at once.
   */
  readonly onServing?: ((transport: Transport) => void) | undefined;
  /** The coordinator's rendezvous for this update (absent when catching up outside an update). */
  readonly exchange?: AddressExchange | undefined;
  /** This worker's address as its peers reach it (HOTWEIGHTS_ADVERTISE_HOST or the route to the coordinator). */
  readonly advertiseHost?: string | undefined;
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

/**
 * Stages only this rank's share of the plan, each bucket "broadcast" to it from the source by
 * `transport` (made for the world the route needs): how a rank that arrives after the broadcasts
 * gets its bytes from peers. Every item is verified where it lands. Resolves undefined when that
 * fails, so the caller reads from the source instead.
 */
export async function stageShareFromPeers(
  ctx: AttemptContext,
  transport: (world: number) => Transport,
  how: { readonly done: string; readonly failed: string },
): Promise<AttemptResult | undefined> {
  const { plan, rank } = ctx;
  const consumed = consumedBy(plan, rank);
  const world = Math.max(rank, plan.source.rank) + 1;
  const route = {
    plan: { ...plan, world_size: world, buckets: consumed.map((b) => ({ ...b, consumer_ranks: [rank] })) },
    worldSize: world,
  };
  try {
    const staged = await stageUpdate({ ...pipelineOptions(ctx), route, transport: transport(world) });
    ctx.log(`update ${plan.version}: ${how.done} and verified ${consumed.length} bucket(s) from peers`);
    return { staged, have: consumed.map((b) => b.bucket_id) };
  } catch (err) {
    if (ctx.signal.aborted) throw err;
    ctx.log(
      `update ${plan.version}: ${how.failed} from peers failed (${(err as Error).message}); using the source`,
    );
    return undefined;
  }
}
