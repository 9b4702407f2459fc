/**
 * The worker agent: one per rank. It registers and heartbeats (its lease), listens to events, and
 * reconciles with the coordinator's `status` after every event and every heartbeat, so a worker
 * that starts late or misses an event catches up instead of hanging. For each update it:
 *
 *   gets the plan -> checks it against this world -> stages its share through the runtime's
 *   update pipeline (attempt.ts chooses where the bytes come from: the broadcasts, a peer's
 *   segments, or the source) -> reports the buckets it holds -> precommits with a digest of what
 *   it staged -> on commit flips the adapter; on abort discards the staged update.
 *
 * Live weights change only in `adapter.commit`, and only after the coordinator committed.
 */
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { CoordinatorError, type Manifest, type Plan } from '@hotweights/core';
import { validateManifest } from '@hotweights/manifest';
import { checkPlanWorld, type StagedUpdate } from '@hotweights/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type AttemptServices, stageAttempt } from './attempt.js';
import { CoordinatorClient, EventSubscriber, eventEndpointFor } from './client.js';
import { stagedDigest } from './digest.js';
import { ERROR_CODES } from './protocol.js';
import type { CoordinatorStatus, UpdateView } from './types.js';

/** The agent's options; how an attempt stages (adapter, staging, transport, …) is AttemptServices. */
export interface WorkerAgentOptions extends AttemptServices {
  readonly endpoint: string;
  /** Default: request port + 1. */
  readonly pubEndpoint?: string | undefined;
  readonly token?: string | undefined;
  readonly rank: number;
  readonly worldSize: number;
  /** Default config.nodeId. */
  readonly nodeId?: string;
  /** The next version's manifest when the coordinator holds none (e.g. from plan.next_manifest.path). */
  readonly loadManifest?: (plan: Plan) => Promise<Manifest | undefined>;
  readonly log?: (line: string) => void;
  /** Called when an update ends on this worker. */
  readonly onFinished?: (version: string, result: 'committed' | 'aborted' | 'failed') => void;
}

type Phase = 'staging' | 'prepared' | 'precommitted' | 'failed' | 'finished';

interface Attempt {
  readonly version: string;
  readonly begunAt: number | null;
  readonly ctrl: AbortController;
  phase: Phase;
  plan?: Plan;
  rendezvous?: string;
  /** Staged, verified and prepared; waiting for the coordinator's decision. */
  staged?: StagedUpdate;
  done: Promise<void>;
}

class WorkerMetrics {
  readonly updates: Counter<'result'>;
  readonly stageSeconds: Histogram;
  readonly coordinatorUp: Gauge;
  constructor(registry: Registry) {
    const registers = [registry];
    this.updates = new Counter({
      name: 'hotweights_worker_updates_total',
      help: 'Updates finished on this worker, by result (committed, aborted, failed)',
      labelNames: ['result'],
      registers,
    });
    this.stageSeconds = new Histogram({
      name: 'hotweights_worker_stage_seconds',
      help: 'Seconds from begin to precommit on this worker',
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    });
    this.coordinatorUp = new Gauge({
      name: 'hotweights_worker_coordinator_up',
      help: '1 when the last heartbeat reached the coordinator',
      registers,
    });
  }
}

export class WorkerAgent {
  readonly client: CoordinatorClient;
  readonly rank: number;
  readonly worldSize: number;
  readonly #o: WorkerAgentOptions;
  readonly #log: (line: string) => void;
  readonly #metrics: WorkerMetrics | undefined;
  readonly #attempts = new Map<string, Attempt>();
  #workerId: string | undefined;
  #live: string | null = null;
  #sub: EventSubscriber | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #reconciling: Promise<void> | undefined;
  #again = false;

  private constructor(o: WorkerAgentOptions) {
    this.#o = o;
    this.rank = o.rank;
    this.worldSize = o.worldSize;
    this.#log = o.log ?? (() => {});
    this.#metrics = o.metrics ? new WorkerMetrics(o.metrics) : undefined;
    this.client = new CoordinatorClient(o.endpoint, {
      token: o.token,
      timeoutMs: Math.max(2000, o.config.leaseS * 1000),
    });
  }

  /** Registers with the coordinator (retrying until it answers) and starts following it. */
  static async start(o: WorkerAgentOptions): Promise<WorkerAgent> {
    const agent = new WorkerAgent(o);
    agent.#live = await o.adapter.currentVersion();
    // Only the events that change what a worker does; the rest would wake every worker for nothing.
    agent.#sub = new EventSubscriber(eventEndpointFor(o.endpoint, o.pubEndpoint), () => agent.kick(), {
      topics: ['begin', 'commit', 'abort'],
    });
    await agent.#register(true);
    agent.#timer = setInterval(() => void agent.#tick(), o.config.heartbeatS * 1000);
    agent.kick();
    return agent;
  }

  get workerId(): string | undefined {
    return this.#workerId;
  }

  /** Version live on this worker's adapter. */
  get liveVersion(): string | null {
    return this.#live;
  }

  async #register(retry: boolean): Promise<void> {
    for (;;) {
      try {
        const r = await this.client.call<{ worker_id: string }>('register', {
          rank: this.rank,
          world_size: this.worldSize,
          node_id: this.#o.nodeId ?? this.#o.config.nodeId,
          host: hostname(),
          pid: process.pid,
          live_version: this.#live,
          ...(this.#workerId ? { worker_id: this.#workerId } : {}),
        });
        const first = this.#workerId === undefined;
        this.#workerId = r.worker_id;
        this.#metrics?.coordinatorUp.set(1);
        this.#log(
          first
            ? `worker rank ${this.rank}/${this.worldSize} registered as ${r.worker_id} with ${this.#o.endpoint} (live ${this.#live ?? 'none'})`
            : `worker re-registered as ${r.worker_id}`,
        );
        return;
      } catch (err) {
        this.#metrics?.coordinatorUp.set(0);
        if (!retry || this.#stopped || (err instanceof CoordinatorError && err.code !== 'HW_TIMEOUT'))
          throw err;
        this.#log(`coordinator not reachable yet (${(err as Error).message}); retrying`);
      }
    }
  }

  async #tick(): Promise<void> {
    if (this.#stopped || !this.#workerId) return;
    try {
      await this.client.call('heartbeat', { worker_id: this.#workerId, live_version: this.#live });
      this.#metrics?.coordinatorUp.set(1);
    } catch (err) {
      this.#metrics?.coordinatorUp.set(0);
      if (err instanceof CoordinatorError && err.code === ERROR_CODES.unknownWorker) {
        // The coordinator forgot us (restarted on memory, or our lease ran out): join again.
        await this.#register(false).catch((e: unknown) =>
          this.#log(`re-register failed: ${(e as Error).message}`),
        );
      } else if (!this.#stopped) {
        this.#log(`heartbeat failed: ${(err as Error).message}`);
      }
    }
    this.kick();
  }

  /** Re-reads the coordinator's status and acts on it (one pass at a time). */
  kick(): void {
    if (this.#stopped) return;
    if (this.#reconciling) {
      this.#again = true;
      return;
    }
    this.#reconciling = (async () => {
      do {
        this.#again = false;
        try {
          await this.#reconcile(await this.client.status());
        } catch (err) {
          if (!this.#stopped) this.#log(`status check failed: ${(err as Error).message}`);
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#reconciling = undefined;
    });
  }

  async #reconcile(s: CoordinatorStatus): Promise<void> {
    const active = s.active;
    if (active) {
      const key = `${active.version}@${active.begun_at}`;
      if (!this.#attempts.has(key)) this.#startAttempt(key, active);
    }
    for (const a of this.#attempts.values()) {
      if (a.phase === 'finished') continue;
      const u = s.updates.find((x) => x.version === a.version && x.begun_at === a.begunAt);
      const state = u?.state ?? 'aborted';
      if (state === 'begun' || state === 'precommitted' || state === 'planned') continue;
      if (state === 'committed') {
        if (a.phase === 'staging') continue; // flips once staged (see #runAttempt)
        if (a.phase === 'failed') await this.#discard(a, 'failed');
        else await this.#flip(a);
      } else {
        a.ctrl.abort(
          new CoordinatorError('HW_COORD_ABORTED', `update ${a.version} aborted: ${u?.reason ?? 'gone'}`),
        );
        await a.done;
        await this.#discard(a, 'aborted', u?.reason ?? undefined);
      }
    }
  }

  #startAttempt(key: string, active: UpdateView): void {
    const a: Attempt = {
      version: active.version,
      begunAt: active.begun_at,
      ctrl: new AbortController(),
      phase: 'staging',
      done: Promise.resolve(),
    };
    this.#attempts.set(key, a);
    this.#log(`update ${a.version}: begun, staging rank ${this.rank}`);
    a.done = this.#runAttempt(a, active).then(
      () => {
        this.kick();
      },
      async (err: unknown) => {
        a.phase = 'failed';
        if (a.ctrl.signal.aborted) return; // the coordinator aborted: nothing to report
        const reason = `rank ${this.rank} (${this.#o.config.nodeId}): ${(err as Error).message}`;
        this.#log(`update ${a.version}: failed: ${reason}`);
        // One rank that cannot stage dooms the update: say so, so nobody waits for a lease.
        await this.client.abort({ version: a.version, reason }).catch(() => {});
        this.kick();
      },
    );
  }

  async #runAttempt(a: Attempt, active: UpdateView): Promise<void> {
    const started = performance.now();
    const { plan, manifest: doc } = await this.client.getPlan(a.version, { withManifest: true });
    if (plan.digest !== active.plan_digest) {
      throw new CoordinatorError(ERROR_CODES.refused, `plan digest changed under update ${a.version}`);
    }
    a.plan = plan;
    // A plan for another world fails here, before anything moves, saying what to re-plan.
    checkPlanWorld(plan, {
      rank: this.rank,
      worldSize: this.worldSize,
      source: `${a.version} (from the coordinator)`,
    });
    const signal = a.ctrl.signal;
    const manifest = doc
      ? validateManifest(doc, `coordinator manifest ${a.version}`)
      : await this.#o.loadManifest?.(plan);
    const { staged, have } = await stageAttempt({
      client: this.client,
      services: this.#o,
      rank: this.rank,
      worldSize: this.worldSize,
      nodeId: this.#o.nodeId ?? this.#o.config.nodeId,
      workerId: this.#workerId ?? `rank-${this.rank}`,
      plan,
      manifest,
      begunAt: a.begunAt,
      signal,
      log: this.#log,
      onRendezvous: (dir) => {
        a.rendezvous = dir;
      },
    });
    a.staged = staged;
    a.phase = 'prepared';
    if (signal.aborted) throw signal.reason;
    if (have.length) await this.client.reportHave(a.version, this.rank, have).catch(() => {});
    const digest = stagedDigest(a.version, staged.buckets);
    if (active.required_ranks.includes(this.rank)) {
      try {
        await this.client.precommit({
          version: a.version,
          rank: this.rank,
          digest,
          workerId: this.#workerId ?? null,
        });
      } catch (err) {
        // Already committed without us (we were not needed after all): the reconcile flips.
        if (!(err instanceof CoordinatorError && /is committed/.test(err.message))) throw err;
      }
      a.phase = 'precommitted';
      this.#log(
        `update ${a.version}: staged ${staged.buckets.length} bucket(s) (${staged.prepared}), verified, precommitted`,
      );
    } else {
      this.#log(`update ${a.version}: prepared (rank ${this.rank} is not needed for the quorum)`);
    }
    this.#metrics?.stageSeconds.observe((performance.now() - started) / 1000);
  }

  async #flip(a: Attempt): Promise<void> {
    a.phase = 'finished';
    try {
      if (a.staged) await a.staged.commit();
      else await this.#o.adapter.commit(a.version);
      this.#live = a.version;
      this.#log(`update ${a.version}: committed, live ${a.version}`);
      this.#metrics?.updates.inc({ result: 'committed' });
      this.#o.onFinished?.(a.version, 'committed');
    } catch (err) {
      this.#log(`update ${a.version}: adapter commit failed: ${(err as Error).message}`);
      this.#metrics?.updates.inc({ result: 'failed' });
      this.#o.onFinished?.(a.version, 'failed');
    } finally {
      await this.#cleanup(a);
    }
    this.client.call('heartbeat', { worker_id: this.#workerId, live_version: this.#live }).catch(() => {});
  }

  async #discard(a: Attempt, result: 'aborted' | 'failed', reason?: string): Promise<void> {
    a.phase = 'finished';
    await (a.staged ? a.staged.discard() : this.#o.adapter.abort(a.version)).catch(() => {});
    await this.#cleanup(a);
    this.#log(
      `update ${a.version}: ${result}${reason ? ` (${reason})` : ''}; staging discarded, live ${this.#live ?? 'none'}`,
    );
    this.#metrics?.updates.inc({ result });
    this.#o.onFinished?.(a.version, result);
  }

  async #cleanup(a: Attempt): Promise<void> {
    await this.#o.staging.release(a.version).catch(() => {});
    if (a.rendezvous && a.plan?.source.rank === this.rank)
      await rm(a.rendezvous, { recursive: true, force: true }).catch(() => {});
  }

  /** Stops following the coordinator; an update in progress on this worker is abandoned locally. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#sub?.close();
    for (const a of this.#attempts.values()) {
      if (a.phase !== 'finished') a.ctrl.abort(new CoordinatorError('HW_COORD_STOPPED', 'worker stopping'));
    }
    await Promise.allSettled([...this.#attempts.values()].map((a) => a.done));
    await this.#reconciling?.catch(() => {});
    for (const a of this.#attempts.values()) if (a.phase !== 'finished') await this.#cleanup(a);
    this.client.close();
  }
}
