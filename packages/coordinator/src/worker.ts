/**
 * The worker agent: one per rank. It registers and heartbeats (its lease), listens to events, and
 * reconciles with the coordinator's `status` after every event and every heartbeat, so a worker
 * that starts late or misses an event catches up instead of hanging. For each update it:
 *
 *   gets the plan -> replicates its share into staging (core's Replicator over the selected
 *   transport; a rank that arrives after the broadcasts are over reads its buckets from the
 *   source instead) -> reports the buckets it holds -> prepares the adapter -> precommits with a
 *   digest of what it staged -> on commit flips the adapter; on abort discards staging.
 *
 * Live weights change only in `adapter.commit`, and only after the coordinator committed.
 */
import { createHash } from 'node:crypto';
import { access, mkdir, open, rm } from 'node:fs/promises';
import { hostname } from 'node:os';
import { join } from 'node:path';
import {
  type Adapter,
  type BroadcastRequest,
  CoordinatorError,
  type HotweightsConfig,
  type Manifest,
  type Plan,
  type StagingAgent,
  type Transport,
} from '@hotweights/core';
import { validateManifest } from '@hotweights/manifest';
import { replicateRank } from '@hotweights/runtime';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { CoordinatorClient, EventSubscriber, eventEndpointFor } from './client.js';
import { stagedDigest } from './digest.js';
import { ERROR_CODES } from './protocol.js';
import type { CoordinatorStatus, UpdateView } from './types.js';

export interface WorkerAgentOptions {
  readonly endpoint: string;
  /** Default: request port + 1. */
  readonly pubEndpoint?: string | undefined;
  readonly token?: string | undefined;
  readonly rank: number;
  readonly worldSize: number;
  /** Default config.nodeId. */
  readonly nodeId?: string;
  readonly config: HotweightsConfig;
  readonly adapter: Adapter;
  readonly staging: StagingAgent;
  /** Opens this rank's transport for one update; every rank of the world gets the same rendezvous. */
  readonly openTransport: (args: {
    plan: Plan;
    rendezvous: Readonly<Record<string, string>>;
  }) => Promise<Transport>;
  /** The next version's manifest when the coordinator holds none (e.g. from plan.next_manifest.path). */
  readonly loadManifest?: (plan: Plan) => Promise<Manifest | undefined>;
  readonly metrics?: Registry | undefined;
  /** Check every landed item's hash (default true). */
  readonly verify?: boolean;
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

/** A transport for one rank alone: the rank is the source, so a broadcast to itself moves nothing. */
class SelfTransport implements Transport {
  readonly name = 'self';
  constructor(
    readonly rank: number,
    readonly worldSize: number,
  ) {}
  async broadcast(): Promise<void> {}
  async close(): Promise<void> {}
}

/** Where a rank's staged bucket can be read on its node (the shared-memory segment file). */
interface SegmentHandle {
  readonly path: string;
  readonly offset: number;
  readonly length: number;
  readonly rank: number;
}

/**
 * A late joiner's transport: each "broadcast" fills the bucket from the staging segment of a rank
 * on this node that already holds it (found through the coordinator's node-scoped handles). The
 * Replicator still verifies every item it lands.
 */
class SegmentHandleTransport implements Transport {
  readonly name = 'segment-handles';
  constructor(
    readonly rank: number,
    readonly worldSize: number,
    private readonly handles: ReadonlyMap<number, SegmentHandle>,
  ) {}
  async broadcast(req: BroadcastRequest): Promise<void> {
    const h = this.handles.get(req.bucketId);
    if (!h || h.length !== req.data.byteLength) {
      throw new CoordinatorError('HW_COORD_HANDLE', `no usable handle for bucket ${req.bucketId}`);
    }
    const fh = await open(h.path, 'r');
    try {
      let done = 0;
      while (done < h.length) {
        const { bytesRead } = await fh.read(req.data, done, h.length - done, h.offset + done);
        if (bytesRead === 0) throw new CoordinatorError('HW_COORD_HANDLE', `segment ${h.path} ended early`);
        done += bytesRead;
      }
    } finally {
      await fh.close();
    }
  }
  async close(): Promise<void> {}
}

function isSegmentHandle(v: unknown): v is SegmentHandle {
  const h = v as SegmentHandle | null;
  return (
    h !== null &&
    typeof h === 'object' &&
    typeof h.path === 'string' &&
    Number.isSafeInteger(h.offset) &&
    Number.isSafeInteger(h.length) &&
    Number.isSafeInteger(h.rank)
  );
}

function raceAbort<T>(p: Promise<T>, signal: AbortSignal, onLate: (value: T) => void): Promise<T> {
  if (signal.aborted) {
    p.then(onLate, () => {});
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => {
      p.then(onLate, () => {});
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        if (signal.aborted) onLate(v);
        else resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
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
    const signal = a.ctrl.signal;
    const ids = plan.buckets.map((b) => b.bucket_id);
    const source = plan.source.rank;
    const consumed = plan.buckets.filter((b) => b.consumer_ranks.includes(this.rank));
    // The source reports every bucket once it has sent them all: after that, nobody will take part
    // in a broadcast again, and a rank arriving now reads its share from the source checkpoint.
    const holders = ids.length ? (await this.client.whoHas(a.version, ids)).holders : {};
    const broadcastsOver =
      this.rank !== source && ids.length > 0 && ids.every((id) => holders[id]?.includes(source));
    const handles = broadcastsOver
      ? await this.#findHandles(
          a,
          consumed.map((b) => b.bucket_id),
          holders,
        )
      : undefined;
    let copied = false;
    if (handles) {
      const from = [...new Set([...handles.values()].map((h) => h.rank))].sort((x, y) => x - y);
      this.#log(
        `update ${a.version}: broadcasts are over; copying ${consumed.length} bucket(s) from rank(s) ${from.join(', ')} on this node`,
      );
      const world = Math.max(this.rank, source) + 1;
      try {
        await replicateRank({
          plan: { ...plan, buckets: consumed.map((b) => ({ ...b, consumer_ranks: [this.rank] })) },
          rank: this.rank,
          worldSize: world,
          transport: new SegmentHandleTransport(this.rank, world, handles),
          staging: this.#o.staging,
          config: this.#o.config,
          signal,
          metrics: this.#o.metrics,
          verify: this.#o.verify ?? true,
        });
        copied = true;
      } catch (err) {
        if (signal.aborted) throw err;
        this.#log(
          `update ${a.version}: copying from peers failed (${(err as Error).message}); using the source`,
        );
      }
      const me = this.#workerId ?? `rank-${this.rank}`;
      await Promise.all(
        [...handles].map(([id, h]) =>
          this.client.ackHandle(this.#nodeId, this.#handleKey(a, id, h.rank), me).catch(() => {}),
        ),
      );
    }
    if (copied) {
      this.#log(`update ${a.version}: copied and verified ${consumed.length} bucket(s) from peers`);
    } else if (broadcastsOver) {
      this.#log(
        `update ${a.version}: broadcasts are over; reading ${consumed.length} bucket(s) from the source`,
      );
      await replicateRank({
        plan: {
          ...plan,
          source: { ...plan.source, rank: this.rank },
          buckets: consumed.map((b) => ({ ...b, consumer_ranks: [this.rank] })),
        },
        rank: this.rank,
        worldSize: this.rank + 1,
        transport: new SelfTransport(this.rank, this.rank + 1),
        staging: this.#o.staging,
        config: this.#o.config,
        signal,
        metrics: this.#o.metrics,
        verify: this.#o.verify ?? true,
      });
    } else {
      a.rendezvous = join(
        this.#o.config.stagingDir,
        `hw-rdv-${createHash('sha256').update(`${a.version}|${a.begunAt}|${plan.digest}`).digest('hex').slice(0, 20)}`,
      );
      await mkdir(a.rendezvous, { recursive: true });
      const transport = await raceAbort(
        this.#o.openTransport({ plan, rendezvous: { dir: a.rendezvous } }),
        signal,
        (late) => void late.close(),
      );
      try {
        await replicateRank({
          plan,
          rank: this.rank,
          worldSize: this.worldSize,
          transport,
          staging: this.#o.staging,
          config: this.#o.config,
          signal,
          metrics: this.#o.metrics,
          verify: this.#o.verify ?? true,
        });
      } finally {
        await transport.close();
      }
      await this.#postHandles(
        a,
        consumed.map((b) => b.bucket_id),
      );
    }
    if (signal.aborted) throw signal.reason;
    const have = this.rank === source && !broadcastsOver ? ids : consumed.map((b) => b.bucket_id);
    if (have.length) await this.client.reportHave(a.version, this.rank, have).catch(() => {});
    const manifest = doc
      ? validateManifest(doc, `coordinator manifest ${a.version}`)
      : await this.#o.loadManifest?.(plan);
    await this.#o.adapter.prepare({ plan, staging: this.#o.staging, ...(manifest ? { manifest } : {}) });
    a.phase = 'prepared';
    if (signal.aborted) throw signal.reason;
    const staged = consumed.filter((b) => this.#o.staging.get(a.version, b.bucket_id));
    const digest = stagedDigest(a.version, staged);
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
      this.#log(`update ${a.version}: staged ${staged.length} bucket(s), verified, precommitted`);
    } else {
      this.#log(`update ${a.version}: prepared (rank ${this.rank} is not needed for the quorum)`);
    }
    this.#metrics?.stageSeconds.observe((performance.now() - started) / 1000);
  }

  get #nodeId(): string {
    return this.#o.nodeId ?? this.#o.config.nodeId;
  }

  #handleKey(a: Attempt, bucketId: number, rank: number): string {
    return `${a.version}@${a.begunAt}/b${bucketId}/r${rank}`;
  }

  /** Lets ranks that join late on this node copy our staged buckets instead of re-reading the source. */
  async #postHandles(a: Attempt, bucketIds: readonly number[]): Promise<void> {
    await Promise.all(
      bucketIds.map(async (id) => {
        const seg = this.#o.staging.get(a.version, id)?.segment;
        if (!seg) return;
        const handle: SegmentHandle = { ...seg, rank: this.rank };
        await this.client
          .postHandle({ nodeId: this.#nodeId, key: this.#handleKey(a, id, this.rank), handle })
          .catch(() => {});
      }),
    );
  }

  /**
   * For every bucket in `bucketIds`, a readable segment of another live holder on this node (from
   * who_has and the node-scoped handles), or undefined if any bucket has none.
   */
  async #findHandles(
    a: Attempt,
    bucketIds: readonly number[],
    holders: Readonly<Record<string, number[]>>,
  ): Promise<Map<number, SegmentHandle> | undefined> {
    if (bucketIds.length === 0) return undefined;
    const found = new Map<number, SegmentHandle>();
    for (const id of bucketIds) {
      for (const rank of holders[id] ?? []) {
        if (rank === this.rank) continue; // our own predecessor: its segments died with it
        const r = await this.client.getHandle(this.#nodeId, this.#handleKey(a, id, rank)).catch(() => null);
        if (!r || !isSegmentHandle(r.handle)) continue;
        const ok = await access(r.handle.path).then(
          () => true,
          () => false,
        );
        if (ok) {
          found.set(id, r.handle);
          break;
        }
      }
      if (!found.has(id)) return undefined;
    }
    return found;
  }

  async #flip(a: Attempt): Promise<void> {
    a.phase = 'finished';
    try {
      await this.#o.adapter.commit(a.version);
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
    await this.#o.adapter.abort(a.version).catch(() => {});
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
