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
 *
 * Two-phase commit as the textbook has it: once this rank voted yes (or may have: the precommit
 * reply was lost) it is in doubt and keeps what it prepared until the coordinator says the
 * outcome; it asks, it never guesses. After a commit the rank converges by itself: every pass
 * reads the live version from the adapter (never a cached value), and when it is not the
 * coordinator's current version the rank finishes the flip from what it prepared or kept
 * (`adapter.hasVersion`), or catches up from the source (catch-up.ts); a failure is reported in
 * the heartbeat and retried with backoff until it succeeds.
 */
import { rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { CoordinatorError, isErrorKind, type Manifest, type Plan, type Transport } from '@hotweights/core';
import { validateManifest } from '@hotweights/manifest';
import { checkPlanWorld, type StagedUpdate } from '@hotweights/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { type AttemptServices, stageAttempt } from './attempt.js';
import { type PlanCatchUp, stageCatchUp } from './catch-up.js';
import { CoordinatorClient, EventSubscriber, eventEndpointFor } from './client.js';
import { rollbackDigest, stagedDigest } from './digest.js';
import { localAddressToward } from './endpoint.js';
import { updateExchange } from './meet.js';
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
  /** A full plan of a version for catching up when its stored plan is a delta (see catch-up.ts). */
  readonly planCatchUp?: PlanCatchUp;
  /**
   * The id and lease key of this worker's previous process (kept by the caller, e.g. in the
   * target's fleet marker): a restarted worker proves with them that it may take over the rank
   * at once; without them it waits for the old lease to run out.
   */
  readonly previousLease?: WorkerLease | undefined;
  /** Called with the id and lease key after every (re-)registration, to keep them for a restart. */
  readonly onRegistered?: (lease: WorkerLease) => void | Promise<void>;
  /** Called when an update ends on this worker. */
  readonly onFinished?: (version: string, result: 'committed' | 'aborted' | 'failed') => void;
}

/** A worker's id and the secret that proves it (from its register reply). */
export interface WorkerLease {
  readonly workerId: string;
  readonly leaseKey: string;
}

/** Longest wait between two tries to reach the current version. */
const MAX_SYNC_BACKOFF_MS = 30_000;

/** Whether process `pid` on this host is still running. */
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * A precommit that failed this way may still have been recorded (the reply was lost or late):
 * the rank is in doubt. Any other refusal is the coordinator's answer: the vote did not count.
 */
function voteMayHaveCounted(err: unknown): boolean {
  const code = (err as { code?: unknown })?.code;
  return code === 'HW_TIMEOUT' || code === ERROR_CODES.unreachable || !isErrorKind(err, 'CoordinatorError');
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
  /** This rank's transport, kept open to serve the update's buckets to late ranks until it ends. */
  serving?: Transport;
  /**
   * The vote this rank sent, re-sent while the coordinator does not have it. `sentAt`
   * (performance.now()) of its last send: only a status asked for after that can show it lost.
   */
  vote?: { digest: string; sentAt: number; resending: boolean };
  done: Promise<void>;
}

class WorkerMetrics {
  readonly updates: Counter<'result'>;
  readonly stageSeconds: Histogram;
  readonly coordinatorUp: Gauge;
  readonly servedBytes: Counter;
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
    this.servedBytes = new Counter({
      name: 'hotweights_worker_served_bytes_total',
      help: "Bucket bytes this worker's transport served to ranks that arrived after the broadcasts",
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
  #lease: WorkerLease | undefined;
  /** This worker's address as its peers reach it (see localAddressToward). */
  #advertiseHost: string | undefined;
  #live: string | null = null;
  #sub: EventSubscriber | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #reconciling: Promise<void> | undefined;
  #again = false;
  /** Why this rank is not on the current version yet (reported in every heartbeat), or null. */
  #syncError: string | null = null;
  #syncFailures = 0;
  #syncNotBefore = 0;
  /** Cancels a catch-up in progress when the worker stops. */
  readonly #syncCtrl = new AbortController();

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
    agent.#advertiseHost =
      o.config.advertiseHost ?? (await localAddressToward(o.endpoint).catch(() => undefined));
    // Only the events that change what a worker does; the rest would wake every worker for nothing.
    agent.#sub = new EventSubscriber(eventEndpointFor(o.endpoint, o.pubEndpoint), () => agent.kick(), {
      topics: ['begin', 'commit', 'abort'],
    });
    try {
      await agent.#register(true);
    } catch (err) {
      // Refused (e.g. the rank is held): nothing may keep the process alive after this.
      agent.#sub.close();
      agent.client.close();
      throw err;
    }
    agent.#timer = setInterval(() => void agent.#tick(), o.config.heartbeatS * 1000);
    agent.kick();
    return agent;
  }

  get workerId(): string | undefined {
    return this.#lease?.workerId;
  }

  /** Version live on this worker's adapter, as last read from it. */
  get liveVersion(): string | null {
    return this.#live;
  }

  /** Reads the live version from the adapter: what the coordinator is told is never a cached value. */
  async #readLive(): Promise<string | null> {
    try {
      this.#live = await this.#o.adapter.currentVersion();
    } catch (err) {
      this.#syncError = `cannot read the live version: ${(err as Error).message}`;
    }
    return this.#live;
  }

  #heartbeatParams(): Record<string, unknown> {
    return {
      worker_id: this.#lease?.workerId,
      lease_key: this.#lease?.leaseKey,
      live_version: this.#live,
      sync_error: this.#syncError,
    };
  }

  /**
   * What to do about the live worker holding our rank: take over at once from a previous process
   * of this worker on this host that is gone (killed, crashed) and whose lease key we were given,
   * or wait out the lease of a holder that is gone or has stopped heartbeating (hung, or on a
   * lost host). A holder that heartbeats is a second claimant's answer: undefined, and the
   * refusal stands.
   */
  async #holderVerdict(): Promise<
    { takeOver: WorkerLease } | { waitMs: number; holder: string } | undefined
  > {
    const s = await this.client.status();
    const holder = s.workers.find((w) => w.rank === this.rank);
    if (!holder) return { waitMs: 0, holder: 'gone' };
    const dead =
      holder.host === hostname() &&
      holder.pid !== null &&
      (holder.pid === process.pid || !processAlive(holder.pid));
    const previous = this.#o.previousLease;
    if (dead && previous?.workerId === holder.worker_id) return { takeOver: previous };
    const silentMs = s.now - holder.last_seen;
    if (!dead && silentMs <= 3 * s.heartbeat_s * 1000) return undefined;
    return {
      waitMs: Math.max(0, holder.lease_expires_at - s.now) + 50,
      holder: `${holder.worker_id} on host ${holder.host} (pid ${holder.pid ?? '?'}), silent for ${(silentMs / 1000).toFixed(1)} s`,
    };
  }

  async #register(retry: boolean): Promise<void> {
    let takeOver: WorkerLease | undefined;
    for (;;) {
      try {
        await this.#readLive();
        const r = await this.client.call<{ worker_id: string; lease_key: string }>('register', {
          rank: this.rank,
          world_size: this.worldSize,
          node_id: this.#o.nodeId ?? this.#o.config.nodeId,
          host: hostname(),
          pid: process.pid,
          live_version: this.#live,
          sync_error: this.#syncError,
          ...(this.#lease ? { worker_id: this.#lease.workerId, lease_key: this.#lease.leaseKey } : {}),
          ...(takeOver ? { take_over: takeOver.workerId, take_over_key: takeOver.leaseKey } : {}),
        });
        const first = this.#lease === undefined;
        this.#lease = { workerId: r.worker_id, leaseKey: r.lease_key };
        await this.#o.onRegistered?.(this.#lease);
        this.#metrics?.coordinatorUp.set(1);
        this.#log(
          first
            ? `worker rank ${this.rank}/${this.worldSize} registered as ${r.worker_id} with ${this.#o.endpoint} (live ${this.#live ?? 'none'})`
            : `worker re-registered as ${r.worker_id}`,
        );
        return;
      } catch (err) {
        if (
          isErrorKind(err, 'CoordinatorError') &&
          err.code === ERROR_CODES.rankHeld &&
          takeOver === undefined
        ) {
          const verdict = await this.#holderVerdict().catch(() => undefined);
          if (verdict && 'takeOver' in verdict) {
            takeOver = verdict.takeOver;
            this.#log(
              `rank ${this.rank} is held by worker ${takeOver.workerId}, an earlier process on this host that is gone: taking over`,
            );
            continue;
          }
          if (verdict && !this.#stopped) {
            this.#log(
              `rank ${this.rank} is held by worker ${verdict.holder}: waiting ${(verdict.waitMs / 1000).toFixed(1)} s for its lease to expire`,
            );
            await new Promise((r) => setTimeout(r, verdict.waitMs));
            continue;
          }
        }
        this.#metrics?.coordinatorUp.set(0);
        if (!retry || this.#stopped || (isErrorKind(err, 'CoordinatorError') && err.code !== 'HW_TIMEOUT'))
          throw err;
        this.#log(`coordinator not reachable yet (${(err as Error).message}); retrying`);
      }
    }
  }

  async #tick(): Promise<void> {
    if (this.#stopped || !this.#lease) return;
    try {
      await this.#readLive();
      await this.client.call('heartbeat', this.#heartbeatParams());
      this.#metrics?.coordinatorUp.set(1);
    } catch (err) {
      this.#metrics?.coordinatorUp.set(0);
      if (isErrorKind(err, 'CoordinatorError') && err.code === ERROR_CODES.unknownWorker) {
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
          const askedAt = performance.now();
          await this.#reconcile(await this.client.status(), askedAt);
        } catch (err) {
          if (!this.#stopped) this.#log(`status check failed: ${(err as Error).message}`);
        }
      } while (this.#again && !this.#stopped);
    })().finally(() => {
      this.#reconciling = undefined;
    });
  }

  /** `askedAt`: when `s` was asked for (performance.now()). */
  async #reconcile(s: CoordinatorStatus, askedAt: number): Promise<void> {
    // Behind the current version with nothing pending: converge first (an update in progress is
    // a delta from the current version, so this rank needs it before taking part).
    await this.#converge(s);
    const active = s.active;
    if (active) {
      const key = `${active.version}@${active.begun_at}`;
      if (!this.#attempts.has(key)) this.#startAttempt(key, active);
    }
    for (const a of this.#attempts.values()) {
      if (a.phase === 'finished') continue;
      const u = await this.#outcome(s, a);
      const state = u?.state ?? 'aborted';
      if (state === 'begun' || state === 'precommitted' || state === 'planned') {
        if (u) this.#resendVote(a, u, askedAt);
        continue;
      }
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

  /**
   * The coordinator's record of this attempt's update. Status lists only recent updates; an
   * in-doubt rank asks for its own rather than read "not listed" as aborted. A record begun at
   * another time means this attempt's update was aborted and the version begun again.
   */
  async #outcome(s: CoordinatorStatus, a: Attempt): Promise<UpdateView | undefined> {
    const listed = s.updates.find((x) => x.version === a.version);
    const u = listed ?? (await this.client.getUpdate(a.version)).update ?? undefined;
    if (!u || u.begun_at === a.begunAt) return u;
    return { ...u, state: 'aborted', reason: u.reason ?? 'superseded by a later attempt of the version' };
  }

  /**
   * A yes vote the coordinator does not have (it never arrived) is sent again. The coordinator
   * serves one connection's calls in order, so only a status asked for after the vote went out
   * can tell; an earlier one (answered late) may simply predate the vote.
   */
  #resendVote(a: Attempt, u: UpdateView, askedAt: number): void {
    const vote = a.vote;
    if (!vote || vote.resending || a.phase !== 'precommitted' || !u.missing_ranks.includes(this.rank)) return;
    if (askedAt < vote.sentAt) return;
    vote.resending = true;
    vote.sentAt = performance.now();
    this.client
      .precommit({
        version: a.version,
        rank: this.rank,
        digest: vote.digest,
        workerId: this.#lease?.workerId ?? null,
        leaseKey: this.#lease?.leaseKey ?? null,
      })
      .then(
        () => this.#log(`update ${a.version}: precommit sent again; the coordinator has it now`),
        (err: unknown) => this.#log(`update ${a.version}: precommit again failed: ${(err as Error).message}`),
      )
      .finally(() => {
        vote.resending = false;
      });
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
    this.#log(
      active.kind === 'rollback'
        ? `update ${a.version}: fleet rollback from ${active.from_version ?? '?'} begun on rank ${this.rank}`
        : `update ${a.version}: begun, staging rank ${this.rank}`,
    );
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

  /** What every attempt strategy gets from this agent, for one update (or one catch-up). */
  #attemptScope(signal: AbortSignal, onRendezvous: (dir: string) => void) {
    return {
      client: this.client,
      services: this.#o,
      rank: this.rank,
      worldSize: this.worldSize,
      nodeId: this.#o.nodeId ?? this.#o.config.nodeId,
      workerId: this.#lease?.workerId ?? `rank-${this.rank}`,
      signal,
      log: this.#log,
      onRendezvous,
    };
  }

  #scopeOf(a: Attempt) {
    const scope = this.#attemptScope(a.ctrl.signal, (dir) => {
      a.rendezvous = dir;
    });
    if (a.begunAt === null) return scope;
    const exchange = updateExchange({
      client: this.client,
      version: a.version,
      begunAt: a.begunAt,
      rank: this.rank,
      lease: () => this.#lease,
      timeoutS: this.#o.config.rendezvousTimeoutS,
      signal: a.ctrl.signal,
    });
    const onServing = (transport: Transport) => {
      a.serving = transport;
    };
    return { ...scope, exchange, advertiseHost: this.#advertiseHost, onServing };
  }

  async #runAttempt(a: Attempt, active: UpdateView): Promise<void> {
    const started = performance.now();
    const signal = a.ctrl.signal;
    if (active.precommits[String(this.rank)] && (await this.#o.adapter.hasVersion?.(a.version))) {
      // An earlier process of this rank voted yes and prepared the version: this rank is in doubt
      // and keeps it (no new staging that could fail and abort) until the coordinator decides.
      a.phase = 'precommitted';
      this.#log(
        `update ${a.version}: this rank voted yes before it restarted; in doubt, keeping the prepared version until the coordinator says the outcome`,
      );
      return;
    }
    let digest: string;
    let what: string;
    if (active.kind === 'rollback') {
      // A rollback moves no buckets: a rank votes yes once it can make the version live again,
      // from what it kept or by fetching it anew.
      if (!(await this.#o.adapter.hasVersion?.(a.version))) {
        a.staged = await stageCatchUp(this.#scopeOf(a), a.version, this.#o);
      }
      digest = rollbackDigest(a.version, active.from_version ?? null);
      what = a.staged ? `fetched ${a.version} again` : `kept ${a.version}`;
    } else {
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
      const manifest = doc
        ? validateManifest(doc, `coordinator manifest ${a.version}`)
        : await this.#o.loadManifest?.(plan);
      const { staged, have } = await stageAttempt({
        ...this.#scopeOf(a),
        plan,
        manifest,
        begunAt: a.begunAt,
      });
      a.staged = staged;
      if (signal.aborted) throw signal.reason;
      const lease = this.#lease;
      if (have.length && lease)
        await this.client.reportHave(a.version, this.rank, have, lease).catch(() => {});
      digest = stagedDigest(a.version, staged.buckets);
      what = `staged ${staged.buckets.length} bucket(s) (${(staged.report.bytesLanded / 2 ** 20).toFixed(1)} MiB landed, ${staged.report.itemsVerified} item(s), ${staged.prepared}), verified`;
    }
    a.phase = 'prepared';
    if (signal.aborted) throw signal.reason;
    if (active.required_ranks.includes(this.rank)) {
      a.vote = { digest, sentAt: performance.now(), resending: false };
      // From here this rank is in doubt: whatever happens to the call, it keeps what it prepared
      // until the coordinator says the outcome (#reconcile asks).
      a.phase = 'precommitted';
      try {
        await this.client.precommit({
          version: a.version,
          rank: this.rank,
          digest,
          workerId: this.#lease?.workerId ?? null,
          leaseKey: this.#lease?.leaseKey ?? null,
        });
        this.#log(`update ${a.version}: ${what}, precommitted`);
      } catch (err) {
        if (voteMayHaveCounted(err)) {
          this.#log(
            `update ${a.version}: ${what}; precommit reply lost (${(err as Error).message}): in doubt, keeping what was prepared until the coordinator says the outcome`,
          );
        } else if (isErrorKind(err, 'CoordinatorError') && /is committed/.test(err.message)) {
          // Already committed without us (we were not needed after all): the reconcile flips.
          this.#log(`update ${a.version}: ${what}; committed already`);
        } else {
          a.phase = 'prepared';
          throw err;
        }
      }
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
      this.#syncError = null;
      this.#log(`update ${a.version}: committed, live ${a.version}`);
      this.#metrics?.updates.inc({ result: 'committed' });
      this.#o.onFinished?.(a.version, 'committed');
    } catch (err) {
      // What was prepared stays: #converge retries the flip with backoff until it succeeds.
      this.#syncError = `flip to ${a.version} failed: ${(err as Error).message}`;
      this.#syncNotBefore = Date.now() + this.#nextBackoff();
      this.#log(`update ${a.version}: adapter commit failed: ${(err as Error).message}; will retry`);
      this.#metrics?.updates.inc({ result: 'failed' });
      this.#o.onFinished?.(a.version, 'failed');
    } finally {
      await this.#cleanup(a);
    }
    await this.#readLive();
    this.client.call('heartbeat', this.#heartbeatParams()).catch(() => {});
  }

  #nextBackoff(): number {
    this.#syncFailures += 1;
    return Math.min(MAX_SYNC_BACKOFF_MS, 250 * 2 ** Math.min(this.#syncFailures - 1, 10));
  }

  /**
   * Brings this rank to the coordinator's current version when nothing else is pending: finishes
   * the flip from what it prepared or kept, or catches up from the source. Failures are reported
   * (heartbeat `sync_error`) and retried with backoff.
   */
  async #converge(s: CoordinatorStatus): Promise<void> {
    const target = s.current_version;
    if (target === null || this.#stopped) return;
    for (const a of this.#attempts.values()) {
      if (a.phase === 'staging' || a.phase === 'prepared' || a.phase === 'precommitted') return;
    }
    if ((await this.#readLive()) === target) {
      if (this.#syncError !== null) this.#syncError = null;
      this.#syncFailures = 0;
      return;
    }
    if (Date.now() < this.#syncNotBefore) return;
    const from = this.#live;
    let rendezvous: string | undefined;
    const scope = this.#attemptScope(this.#syncCtrl.signal, (dir) => {
      rendezvous = dir;
    });
    try {
      if (await this.#o.adapter.hasVersion?.(target)) {
        await this.#o.adapter.commit(target);
        this.#log(
          `converged: live ${target} (was ${from ?? 'none'}; finished the flip from what this rank prepared or kept)`,
        );
      } else {
        const staged = await stageCatchUp(scope, target, this.#o);
        await staged.commit();
        this.#log(`converged: live ${target} (was ${from ?? 'none'}; caught up from the source)`);
      }
      this.#syncError = null;
      this.#syncFailures = 0;
    } catch (err) {
      const wait = this.#nextBackoff();
      this.#syncNotBefore = Date.now() + wait;
      this.#syncError = `cannot make ${target} live: ${(err as Error).message}`;
      this.#log(`rank ${this.rank} ${this.#syncError}; retrying in ${(wait / 1000).toFixed(1)} s`);
    } finally {
      if (rendezvous) await rm(rendezvous, { recursive: true, force: true }).catch(() => {});
    }
    await this.#readLive();
    await this.client.call('heartbeat', this.#heartbeatParams()).catch(() => {});
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
    const serving = a.serving;
    if (serving) {
      a.serving = undefined;
      const served = (serving as { servedBytes?: number }).servedBytes ?? 0;
      await serving.close().catch(() => {});
      this.#metrics?.servedBytes.inc(served);
      this.#log(`update ${a.version}: stopped serving; ${served} B served to ranks that came late`);
    }
    await this.#o.staging.release(a.version).catch(() => {});
    if (a.rendezvous && a.plan?.source.rank === this.rank)
      await rm(a.rendezvous, { recursive: true, force: true }).catch(() => {});
  }

  /**
   * Stops following the coordinator. An update in progress on this worker is abandoned locally:
   * what it staged is discarded, unless this rank voted yes (in doubt: a restarted worker finishes
   * the flip from it once the coordinator decides). Live weights are not touched.
   */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer) clearInterval(this.#timer);
    this.#sub?.close();
    this.#syncCtrl.abort(new CoordinatorError('HW_COORD_STOPPED', 'worker stopping'));
    for (const a of this.#attempts.values()) {
      if (a.phase !== 'finished') a.ctrl.abort(new CoordinatorError('HW_COORD_STOPPED', 'worker stopping'));
    }
    await Promise.allSettled([...this.#attempts.values()].map((a) => a.done));
    await this.#reconciling?.catch(() => {});
    for (const a of this.#attempts.values()) {
      if (a.phase === 'finished') continue;
      if (a.phase !== 'precommitted') {
        await (a.staged ? a.staged.discard() : this.#o.adapter.abort(a.version)).catch(() => {});
        this.#log(`update ${a.version}: worker stopping; staging discarded, live ${this.#live ?? 'none'}`);
      }
      await this.#cleanup(a);
    }
    this.client.close();
  }
}
