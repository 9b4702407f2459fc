/**
 * The coordinator's logic, independent of sockets: the version state machine
 * (planned -> begun -> precommitted -> committed | aborted), worker leases, bucket holders and
 * transfer handles. Every request runs alone (one at a time), writes its changes to the backend,
 * then publishes its events; so a restarted coordinator reading the backend sees exactly what
 * clients were told.
 */
import { randomUUID } from 'node:crypto';
import { CoordinatorError, type Plan, SchemaError } from '@hotweights/core';
import { computePlanDigest, type JsonObject, validatePlan } from '@hotweights/manifest';
import { TokenGuard } from './auth.js';
import type { StateBackend } from './backends/backend.js';
import { expectedDigest, requiredRanks } from './digest.js';
import type { CoordinatorMetrics } from './metrics.js';
import {
  type CoordEvent,
  checkParams,
  ERROR_CODES,
  type EventName,
  METHODS,
  type MethodName,
  RawJson,
} from './protocol.js';
import {
  ACTIVE_STATES,
  type CoordinatorStatus,
  type CurrentRecord,
  type HandleRecord,
  type UpdateRecord,
  type UpdateView,
  type WorkerRecord,
} from './types.js';

export interface CoordinatorServiceOptions {
  readonly backend: StateBackend;
  readonly token?: string | undefined;
  readonly leaseS: number;
  readonly heartbeatS: number;
  readonly handleTtlS: number;
  readonly metrics?: CoordinatorMetrics | undefined;
  /** Receives every event after its state change is stored. */
  readonly publish?: (event: CoordEvent) => void;
}

const MAX_HANDLE_BYTES = 64 * 1024;
const RECENT_UPDATES = 20;

const handleKey = (node: string, key: string) =>
  `handle:${encodeURIComponent(node)}:${encodeURIComponent(key)}`;

function refused(message: string): CoordinatorError {
  return new CoordinatorError(ERROR_CODES.refused, message);
}

export class CoordinatorService {
  readonly #backend: StateBackend;
  readonly #guard: TokenGuard;
  readonly #opts: CoordinatorServiceOptions;
  readonly #workers = new Map<string, WorkerRecord>();
  readonly #updates = new Map<string, UpdateRecord>();
  readonly #handles = new Map<string, HandleRecord>();
  readonly #have = new Map<string, Record<string, number[]>>();
  #current: CurrentRecord = { version: null, manifest_digest: null, committed_at: null };
  #seq = 0;
  #activePlan: Plan | undefined;
  /** JSON of the active plan and manifest, made on first request. */
  #activeJson: { plan: string; manifest: string | undefined } | undefined;
  /** When each required rank of the active update was first seen without a live worker. */
  readonly #missingSince = new Map<string, number>();
  readonly #openedAt = Date.now();
  #queue: Promise<unknown> = Promise.resolve();
  publish: (event: CoordEvent) => void;

  private constructor(opts: CoordinatorServiceOptions) {
    this.#opts = opts;
    this.#backend = opts.backend;
    this.#guard = new TokenGuard(opts.token);
    this.publish = opts.publish ?? (() => {});
  }

  /** Opens the service over a backend, recovering whatever state it holds. */
  static async open(opts: CoordinatorServiceOptions): Promise<CoordinatorService> {
    const svc = new CoordinatorService(opts);
    await svc.#recover();
    return svc;
  }

  get backendKind(): 'memory' | 'redis' {
    return this.#backend.kind;
  }

  async #recover(): Promise<void> {
    const now = Date.now();
    const b = this.#backend;
    this.#seq = (await b.get<number>('seq')) ?? 0;
    this.#current = (await b.get<CurrentRecord>('current')) ?? this.#current;
    for (const [, u] of await b.entries<UpdateRecord>('update:')) this.#updates.set(u.version, u);
    // A restarted coordinator gives every known worker a fresh lease: they had no way to
    // heartbeat while it was down. Those that are really gone expire one lease later.
    for (const [, w] of await b.entries<WorkerRecord>('worker:')) {
      const renewed = { ...w, lease_expires_at: now + this.#opts.leaseS * 1000 };
      this.#workers.set(w.worker_id, renewed);
      await b.set(`worker:${w.worker_id}`, renewed);
    }
    for (const [key, h] of await b.entries<HandleRecord>('handle:')) this.#handles.set(key, h);
    for (const [key, have] of await b.entries<Record<string, number[]>>('have:')) {
      this.#have.set(key.slice('have:'.length), have);
    }
    const active = this.#active();
    if (active) this.#activePlan = await b.get<Plan>(`plan:${active.version}`);
    this.#activeJson = undefined;
    this.#refreshGauges();
  }

  /** Runs `fn` after every earlier request and reaper pass: state changes never interleave. */
  #exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => {});
    return run;
  }

  /** Serves one request. Throws CoordinatorError (never with the token in its text). */
  call(method: MethodName, params: JsonObject, token: string | undefined): Promise<unknown> {
    if (METHODS[method].mutating && !this.#guard.allows(token)) {
      return Promise.reject(
        new CoordinatorError(
          ERROR_CODES.unauthorized,
          `${method} needs the coordinator token (set HOTWEIGHTS_COORD_TOKEN): missing or wrong`,
        ),
      );
    }
    return this.#exclusive(() => this.#dispatch(method, params));
  }

  async #dispatch(method: MethodName, p: JsonObject): Promise<unknown> {
    switch (method) {
      case 'ping':
        return { pong: true, now: Date.now() };
      case 'status':
        return this.status();
      case 'list_workers':
        return { workers: [...this.#workers.values()] };
      case 'get_plan':
        return this.#getPlan(p);
      case 'get_current_manifest':
        return this.#getCurrentManifest();
      case 'who_has':
        return this.#whoHas(p);
      case 'register':
        return this.#register(p);
      case 'heartbeat':
        return this.#heartbeat(p);
      case 'submit_plan':
        return this.#submitPlan(p);
      case 'begin':
        return this.#begin(p);
      case 'precommit':
        return this.#precommit(p);
      case 'commit':
        return this.#commit(p);
      case 'abort':
        return this.#abort(p);
      case 'set_current_manifest':
        return this.#setCurrentManifest(p);
      case 'report_have':
        return this.#reportHave(p);
      case 'post_handle':
        return this.#postHandle(p);
      case 'get_handle':
        return this.#getHandle(p);
      case 'ack_handle':
        return this.#ackHandle(p);
    }
  }

  // ---- views -------------------------------------------------------------------------------

  #active(): UpdateRecord | undefined {
    for (const u of this.#updates.values()) if (ACTIVE_STATES.includes(u.state)) return u;
    return undefined;
  }

  #view(u: UpdateRecord): UpdateView {
    const done = new Set(Object.keys(u.precommits).map(Number));
    return {
      ...u,
      precommitted_ranks: u.required_ranks.filter((r) => done.has(r)),
      missing_ranks: u.required_ranks.filter((r) => !done.has(r)),
    };
  }

  status(): CoordinatorStatus {
    const active = this.#active();
    const updates = [...this.#updates.values()]
      .sort((a, b) => (b.begun_at ?? b.submitted_at) - (a.begun_at ?? a.submitted_at))
      .slice(0, RECENT_UPDATES)
      .map((u) => this.#view(u));
    return {
      now: Date.now(),
      seq: this.#seq,
      backend: this.#backend.kind,
      auth: this.#guard.enabled,
      lease_s: this.#opts.leaseS,
      heartbeat_s: this.#opts.heartbeatS,
      current_version: this.#current.version,
      active: active ? this.#view(active) : null,
      updates,
      workers: [...this.#workers.values()].sort((a, b) => a.rank - b.rank),
      handles_active: this.#handles.size,
    };
  }

  // ---- events ------------------------------------------------------------------------------

  async #emit(event: EventName, body: Record<string, unknown>): Promise<void> {
    this.#seq += 1;
    await this.#backend.set('seq', this.#seq);
    this.publish({ ...body, event, seq: this.#seq, at: Date.now() });
  }

  async #putUpdate(u: UpdateRecord): Promise<void> {
    this.#updates.set(u.version, u);
    await this.#backend.set(`update:${u.version}`, u);
    this.#refreshGauges();
  }

  #refreshGauges(): void {
    const m = this.#opts.metrics;
    if (!m) return;
    m.workers.set(this.#workers.size);
    const active = this.#active();
    m.precommitAcks.set(active ? Object.keys(active.precommits).length : 0);
    const have = active ? this.#have.get(active.version) : undefined;
    m.haveBuckets.set(have ? Object.values(have).reduce((n, ranks) => n + ranks.length, 0) : 0);
    m.handlesActive.set(this.#handles.size);
  }

  // ---- workers and leases ------------------------------------------------------------------

  async #register(p: JsonObject): Promise<unknown> {
    const args = checkParams('register', (c) => ({
      rank: c.count(p.rank, 'rank'),
      world_size: c.count(p.world_size ?? 1, 'world_size', { min: 1 }),
      node_id: c.string(p.node_id ?? 'unknown', 'node_id', { nonEmpty: true }),
      host: c.string(p.host ?? 'unknown', 'host'),
      pid: p.pid === undefined || p.pid === null ? null : c.count(p.pid, 'pid'),
      live_version: c.nullableString(p.live_version, 'live_version'),
      worker_id:
        p.worker_id === undefined ? undefined : c.string(p.worker_id, 'worker_id', { nonEmpty: true }),
    }));
    if (args.rank >= args.world_size) {
      throw new CoordinatorError(
        ERROR_CODES.badParams,
        `register: params.rank ${args.rank} is not below world_size ${args.world_size}`,
      );
    }
    const now = Date.now();
    const worker_id = args.worker_id ?? randomUUID();
    const known = this.#workers.has(worker_id);
    const w: WorkerRecord = {
      worker_id,
      rank: args.rank,
      world_size: args.world_size,
      node_id: args.node_id.slice(0, 256),
      host: args.host.slice(0, 256),
      pid: args.pid,
      registered_at: this.#workers.get(worker_id)?.registered_at ?? now,
      last_seen: now,
      lease_expires_at: now + this.#opts.leaseS * 1000,
      live_version: args.live_version,
    };
    this.#workers.set(worker_id, w);
    await this.#backend.set(`worker:${worker_id}`, w);
    this.#refreshGauges();
    if (!known) await this.#emit('worker_joined', { worker_id, rank: w.rank, node_id: w.node_id });
    return { worker_id, lease_s: this.#opts.leaseS, heartbeat_s: this.#opts.heartbeatS, seq: this.#seq };
  }

  async #heartbeat(p: JsonObject): Promise<unknown> {
    const args = checkParams('heartbeat', (c) => ({
      worker_id: c.string(p.worker_id, 'worker_id', { nonEmpty: true }),
      live_version:
        p.live_version === undefined ? undefined : c.nullableString(p.live_version, 'live_version'),
    }));
    const w = this.#workers.get(args.worker_id);
    if (!w) {
      throw new CoordinatorError(
        ERROR_CODES.unknownWorker,
        `heartbeat: worker ${args.worker_id} is not registered (lease expired?): register again`,
      );
    }
    const now = Date.now();
    const renewed: WorkerRecord = {
      ...w,
      last_seen: now,
      lease_expires_at: now + this.#opts.leaseS * 1000,
      live_version: args.live_version === undefined ? w.live_version : args.live_version,
    };
    this.#workers.set(w.worker_id, renewed);
    await this.#backend.set(`worker:${w.worker_id}`, renewed);
    const active = this.#active();
    return {
      lease_s: this.#opts.leaseS,
      seq: this.#seq,
      active: active ? { version: active.version, state: active.state } : null,
      current_version: this.#current.version,
    };
  }

  /**
   * Drops workers whose lease ran out and handles whose TTL did. A lost worker whose rank an
   * update in progress needs aborts that update: live weights everywhere stay as they are.
   */
  reap(): Promise<void> {
    return this.#exclusive(async () => {
      const now = Date.now();
      const lost: WorkerRecord[] = [];
      for (const w of [...this.#workers.values()]) {
        if (w.lease_expires_at > now) continue;
        this.#workers.delete(w.worker_id);
        await this.#backend.delete(`worker:${w.worker_id}`);
        lost.push(w);
      }
      for (const w of lost) {
        await this.#emit('worker_lost', { worker_id: w.worker_id, rank: w.rank, node_id: w.node_id });
        const active = this.#active();
        if (!active?.required_ranks.includes(w.rank)) continue;
        const covered = [...this.#workers.values()].some((o) => o.rank === w.rank);
        if (covered) continue;
        await this.#finishAbort(
          active,
          `worker ${w.worker_id} (rank ${w.rank}, node ${w.node_id}) lost its lease during the update`,
        );
      }
      await this.#abortIfRankMissing(now);
      for (const [key, h] of [...this.#handles]) {
        if (h.expires_at > now) continue;
        this.#handles.delete(key);
        await this.#backend.delete(key);
        this.#opts.metrics?.handlesExpired.inc();
      }
      this.#refreshGauges();
    });
  }

  /**
   * A required rank with no live worker (never joined, or gone before the update began) may
   * still arrive late; after three leases without one the update cannot finish, so it aborts.
   */
  async #abortIfRankMissing(now: number): Promise<void> {
    const active = this.#active();
    if (!active) {
      this.#missingSince.clear();
      return;
    }
    const live = new Set([...this.#workers.values()].map((w) => w.rank));
    const since = active.begun_at ?? now;
    for (const rank of active.required_ranks) {
      if (live.has(rank) || active.precommits[String(rank)]) {
        this.#missingSince.delete(`${active.version}:${rank}`);
        continue;
      }
      const key = `${active.version}:${rank}`;
      const first = this.#missingSince.get(key) ?? Math.max(since, this.#openedAt);
      this.#missingSince.set(key, first);
      const graceMs = 3 * this.#opts.leaseS * 1000;
      if (now - first >= graceMs) {
        this.#missingSince.clear();
        await this.#finishAbort(
          active,
          `rank ${rank} has had no live worker for ${(graceMs / 1000).toFixed(1)} s during the update (never joined, or lost its lease)`,
        );
        return;
      }
    }
  }

  // ---- plans and the state machine -----------------------------------------------------------

  async #submitPlan(p: JsonObject): Promise<unknown> {
    let plan: Plan;
    try {
      plan = validatePlan(p.plan, 'params.plan');
    } catch (err) {
      if (err instanceof SchemaError) {
        throw new CoordinatorError(ERROR_CODES.badParams, `submit_plan: ${err.message}`, { cause: err });
      }
      throw err;
    }
    const digest = computePlanDigest(plan);
    if (digest !== plan.digest) {
      throw new CoordinatorError(
        ERROR_CODES.badParams,
        `submit_plan: params.plan.digest: expected ${digest} (the plan's content does not match its digest: edited or corrupted)`,
      );
    }
    let manifest: JsonObject | undefined;
    if (p.manifest !== undefined && p.manifest !== null) {
      manifest = checkManifestDoc('submit_plan', p.manifest);
      if (manifest.version !== plan.version) {
        throw new CoordinatorError(
          ERROR_CODES.badParams,
          `submit_plan: params.manifest.version: expected ${JSON.stringify(plan.version)} (the plan's version), got ${JSON.stringify(manifest.version)}`,
        );
      }
    }
    const existing = this.#updates.get(plan.version);
    if (existing && ACTIVE_STATES.includes(existing.state)) {
      throw refused(
        `submit_plan: version ${plan.version} is ${existing.state}; abort it before replacing its plan`,
      );
    }
    if (existing?.state === 'committed') {
      throw refused(`submit_plan: version ${plan.version} is already committed; publish a new version`);
    }
    await this.#backend.set(`plan:${plan.version}`, plan);
    if (manifest) await this.#backend.set(`manifest:${plan.version}`, manifest);
    else await this.#backend.delete(`manifest:${plan.version}`);
    await this.#putUpdate({
      version: plan.version,
      state: 'planned',
      plan_digest: plan.digest,
      prev_version: plan.prev_version,
      total_bytes: plan.total_bytes,
      buckets: plan.buckets.length,
      required_ranks: [],
      precommits: {},
      auto_commit: true,
      reason: null,
      has_manifest: manifest !== undefined,
      submitted_at: Date.now(),
      begun_at: null,
      finished_at: null,
    });
    await this.#emit('plan', { version: plan.version, plan_digest: plan.digest });
    return {
      version: plan.version,
      state: 'planned',
      plan_digest: plan.digest,
      buckets: plan.buckets.length,
    };
  }

  async #getPlan(p: JsonObject): Promise<unknown> {
    const { version, withManifest } = checkParams('get_plan', (c) => ({
      version: p.version === undefined ? undefined : c.string(p.version, 'version', { nonEmpty: true }),
      withManifest: p.with_manifest === undefined ? false : checkBool(c, p.with_manifest, 'with_manifest'),
    }));
    const target = version ?? this.#active()?.version;
    if (!target)
      throw new CoordinatorError(
        ERROR_CODES.notFound,
        'get_plan: no update in progress and no version given',
      );
    const u = this.#updates.get(target);
    const meta = `"state":${JSON.stringify(u?.state ?? null)},"begun_at":${JSON.stringify(u?.begun_at ?? null)}`;
    const manifestJson = async () =>
      u?.has_manifest
        ? JSON.stringify((await this.#backend.get<JsonObject>(`manifest:${target}`)) ?? null)
        : 'null';
    if (this.#activePlan?.version === target) {
      // Every worker fetches the active plan (and manifest): serialise them once per update.
      this.#activeJson ??= { plan: JSON.stringify(this.#activePlan), manifest: undefined };
      if (withManifest) this.#activeJson.manifest ??= await manifestJson();
      const m = withManifest ? `,"manifest":${this.#activeJson.manifest}` : '';
      return new RawJson(`{"plan":${this.#activeJson.plan},${meta}${m}}`);
    }
    const plan = await this.#backend.get<Plan>(`plan:${target}`);
    if (!plan) throw new CoordinatorError(ERROR_CODES.notFound, `get_plan: no plan for version ${target}`);
    const m = withManifest ? `,"manifest":${await manifestJson()}` : '';
    return new RawJson(`{"plan":${JSON.stringify(plan)},${meta}${m}}`);
  }

  async #begin(p: JsonObject): Promise<unknown> {
    const args = checkParams('begin', (c) => ({
      version: c.string(p.version, 'version', { nonEmpty: true }),
      auto_commit: p.auto_commit === undefined ? true : checkBool(c, p.auto_commit, 'auto_commit'),
    }));
    const active = this.#active();
    if (active) {
      throw refused(
        `begin ${args.version}: update ${active.version} is ${active.state}; commit or abort it first`,
      );
    }
    const u = this.#updates.get(args.version);
    if (!u)
      throw refused(`begin ${args.version}: no plan submitted for this version (coord-submit-plan first)`);
    if (u.state !== 'planned') {
      throw refused(`begin ${args.version}: the update is ${u.state}; submit its plan again to retry`);
    }
    if (
      u.prev_version !== null &&
      this.#current.version !== null &&
      u.prev_version !== this.#current.version
    ) {
      throw refused(
        `begin ${args.version}: the plan is a delta from ${u.prev_version} but the current version is ${this.#current.version}; plan again against the current manifest`,
      );
    }
    const plan = await this.#backend.get<Plan>(`plan:${args.version}`);
    if (!plan)
      throw new CoordinatorError(ERROR_CODES.internal, `begin ${args.version}: the stored plan is missing`);
    const registered = [...new Set([...this.#workers.values()].map((w) => w.rank))];
    this.#activePlan = plan;
    this.#activeJson = undefined;
    this.#have.set(args.version, {});
    await this.#backend.set(`have:${args.version}`, {});
    const begun: UpdateRecord = {
      ...u,
      state: 'begun',
      auto_commit: args.auto_commit,
      required_ranks: requiredRanks(plan, registered),
      precommits: {},
      reason: null,
      begun_at: Date.now(),
    };
    await this.#putUpdate(begun);
    await this.#emit('begin', {
      version: begun.version,
      plan_digest: begun.plan_digest,
      required_ranks: begun.required_ranks,
    });
    // Nobody to wait for (an empty plan with no workers): the quorum is already there.
    if (begun.required_ranks.length === 0) return this.#reachQuorum(begun);
    return this.#view(begun);
  }

  async #precommit(p: JsonObject): Promise<unknown> {
    const args = checkParams('precommit', (c) => ({
      version: c.string(p.version, 'version', { nonEmpty: true }),
      rank: c.count(p.rank, 'rank'),
      digest: c.string(p.digest, 'digest', { nonEmpty: true }),
      worker_id: c.nullableString(p.worker_id, 'worker_id'),
    }));
    const u = this.#updates.get(args.version);
    if (!u) throw refused(`precommit ${args.version}: no such update`);
    if (!ACTIVE_STATES.includes(u.state))
      throw refused(`precommit ${args.version}: the update is ${u.state}`);
    if (!u.required_ranks.includes(args.rank)) {
      throw refused(
        `precommit ${args.version}: rank ${args.rank} is not part of this update (ranks ${u.required_ranks.join(', ')})`,
      );
    }
    const plan = this.#activePlan;
    if (!plan || plan.version !== args.version) {
      throw new CoordinatorError(ERROR_CODES.internal, `precommit ${args.version}: the plan is not loaded`);
    }
    const expected = expectedDigest(plan, args.rank);
    if (args.digest !== expected) {
      throw new CoordinatorError(
        ERROR_CODES.digestMismatch,
        `precommit ${args.version}: rank ${args.rank} staged something else than the plan assigns it (digest ${args.digest.slice(0, 24)}…, expected ${expected.slice(0, 24)}…)`,
      );
    }
    const updated: UpdateRecord = {
      ...u,
      precommits: {
        ...u.precommits,
        [String(args.rank)]: { digest: args.digest, worker_id: args.worker_id, at: Date.now() },
      },
    };
    await this.#putUpdate(updated);
    await this.#emit('precommit', { version: u.version, rank: args.rank });
    const view = this.#view(updated);
    if (u.state === 'begun' && view.missing_ranks.length === 0) return this.#reachQuorum(updated);
    return view;
  }

  async #reachQuorum(u: UpdateRecord): Promise<UpdateView> {
    const q: UpdateRecord = { ...u, state: 'precommitted' };
    await this.#putUpdate(q);
    await this.#emit('quorum', { version: q.version });
    if (q.auto_commit) return this.#finishCommit(q);
    return this.#view(q);
  }

  async #commit(p: JsonObject): Promise<unknown> {
    const args = checkParams('commit', (c) => ({
      version: c.string(p.version, 'version', { nonEmpty: true }),
    }));
    const u = this.#updates.get(args.version);
    if (!u) throw refused(`commit ${args.version}: no such update`);
    if (u.state === 'committed') return this.#view(u);
    if (u.state === 'begun') {
      const missing = this.#view(u).missing_ranks;
      throw new CoordinatorError(
        ERROR_CODES.noQuorum,
        `commit ${args.version}: no quorum yet: rank(s) ${missing.join(', ')} have not precommitted`,
      );
    }
    if (u.state !== 'precommitted') throw refused(`commit ${args.version}: the update is ${u.state}`);
    return this.#finishCommit(u);
  }

  async #finishCommit(u: UpdateRecord): Promise<UpdateView> {
    const now = Date.now();
    const committed: UpdateRecord = { ...u, state: 'committed', finished_at: now };
    const manifest = u.has_manifest
      ? await this.#backend.get<JsonObject>(`manifest:${u.version}`)
      : undefined;
    if (manifest) await this.#backend.set('current_manifest', manifest);
    this.#current = {
      version: u.version,
      manifest_digest: manifest ? String(manifest.digest ?? '') || null : this.#current.manifest_digest,
      committed_at: now,
    };
    await this.#backend.set('current', this.#current);
    await this.#putUpdate(committed);
    await this.#clearActive(u.version);
    this.#opts.metrics?.updates.inc({ result: 'committed' });
    await this.#emit('commit', { version: u.version, plan_digest: u.plan_digest });
    return this.#view(committed);
  }

  async #abort(p: JsonObject): Promise<unknown> {
    const args = checkParams('abort', (c) => ({
      version: p.version === undefined ? undefined : c.string(p.version, 'version', { nonEmpty: true }),
      reason: p.reason === undefined ? undefined : c.string(p.reason, 'reason'),
    }));
    const active = this.#active();
    if (!active) throw refused('abort: no update is in progress');
    if (args.version !== undefined && args.version !== active.version) {
      throw refused(`abort ${args.version}: the update in progress is ${active.version}`);
    }
    return this.#finishAbort(active, (args.reason ?? 'aborted by request').slice(0, 500));
  }

  async #finishAbort(u: UpdateRecord, reason: string): Promise<UpdateView> {
    const aborted: UpdateRecord = { ...u, state: 'aborted', reason, finished_at: Date.now() };
    await this.#putUpdate(aborted);
    await this.#clearActive(u.version);
    this.#opts.metrics?.updates.inc({ result: 'aborted' });
    await this.#emit('abort', { version: u.version, reason });
    return this.#view(aborted);
  }

  async #clearActive(version: string): Promise<void> {
    this.#activePlan = undefined;
    this.#activeJson = undefined;
    this.#have.delete(version);
    await this.#backend.delete(`have:${version}`);
    this.#refreshGauges();
  }

  // ---- manifests -----------------------------------------------------------------------------

  async #setCurrentManifest(p: JsonObject): Promise<unknown> {
    const manifest = checkManifestDoc('set_current_manifest', p.manifest);
    const active = this.#active();
    if (active) throw refused(`set_current_manifest: update ${active.version} is ${active.state}`);
    await this.#backend.set('current_manifest', manifest);
    this.#current = {
      version: manifest.version as string,
      manifest_digest: typeof manifest.digest === 'string' ? manifest.digest : null,
      committed_at: this.#current.committed_at,
    };
    await this.#backend.set('current', this.#current);
    await this.#emit('manifest', { version: this.#current.version });
    return { version: this.#current.version };
  }

  async #getCurrentManifest(): Promise<unknown> {
    const manifest = (await this.#backend.get<JsonObject>('current_manifest')) ?? null;
    return { version: this.#current.version, manifest };
  }

  // ---- bucket holders (late joiners) --------------------------------------------------------

  async #reportHave(p: JsonObject): Promise<unknown> {
    const args = checkParams('report_have', (c) => ({
      version: c.string(p.version, 'version', { nonEmpty: true }),
      rank: c.count(p.rank, 'rank'),
      bucket_ids: c.array(p.bucket_ids, 'bucket_ids').map((b, i) => c.count(b, `bucket_ids[${i}]`)),
    }));
    const active = this.#active();
    if (!active || active.version !== args.version) {
      throw refused(`report_have ${args.version}: not the update in progress`);
    }
    const known = new Set(this.#activePlan?.buckets.map((b) => b.bucket_id) ?? []);
    const have = { ...(this.#have.get(args.version) ?? {}) };
    for (const id of args.bucket_ids) {
      if (!known.has(id))
        throw new CoordinatorError(ERROR_CODES.badParams, `report_have: bucket ${id} is not in the plan`);
      const ranks = new Set(have[id] ?? []);
      ranks.add(args.rank);
      have[id] = [...ranks].sort((a, b) => a - b);
    }
    this.#have.set(args.version, have);
    await this.#backend.set(`have:${args.version}`, have);
    this.#refreshGauges();
    return { buckets: args.bucket_ids.length };
  }

  async #whoHas(p: JsonObject): Promise<unknown> {
    const args = checkParams('who_has', (c) => ({
      version: c.string(p.version, 'version', { nonEmpty: true }),
      bucket_ids:
        p.bucket_ids === undefined
          ? undefined
          : c.array(p.bucket_ids, 'bucket_ids').map((b, i) => c.count(b, `bucket_ids[${i}]`)),
    }));
    const have = this.#have.get(args.version) ?? {};
    const live = new Set([...this.#workers.values()].map((w) => w.rank));
    const holders: Record<string, number[]> = {};
    const ids = args.bucket_ids ?? Object.keys(have).map(Number);
    for (const id of ids) holders[id] = (have[id] ?? []).filter((r) => live.has(r));
    return { version: args.version, holders };
  }

  // ---- transfer handles ------------------------------------------------------------------------

  async #postHandle(p: JsonObject): Promise<unknown> {
    const args = checkParams('post_handle', (c) => ({
      node_id: c.string(p.node_id, 'node_id', { nonEmpty: true }),
      key: c.string(p.key, 'key', { nonEmpty: true }),
      consumers:
        p.consumers === undefined || p.consumers === null
          ? null
          : c
              .array(p.consumers, 'consumers')
              .map((x, i) => c.string(x, `consumers[${i}]`, { nonEmpty: true })),
      ttl_s:
        p.ttl_s === undefined
          ? this.#opts.handleTtlS
          : typeof p.ttl_s === 'number' && p.ttl_s > 0 && p.ttl_s <= 86_400
            ? p.ttl_s
            : c.fail('ttl_s', 'a number of seconds in (0, 86400]', p.ttl_s),
    }));
    if (p.handle === undefined)
      throw new CoordinatorError(ERROR_CODES.badParams, 'post_handle: params.handle: expected a value');
    if (JSON.stringify(p.handle).length > MAX_HANDLE_BYTES) {
      throw new CoordinatorError(
        ERROR_CODES.tooLarge,
        `post_handle: params.handle: expected at most ${MAX_HANDLE_BYTES} bytes of JSON`,
      );
    }
    const now = Date.now();
    const h: HandleRecord = {
      node_id: args.node_id,
      key: args.key,
      handle: p.handle,
      consumers: args.consumers,
      acked: [],
      posted_at: now,
      expires_at: now + args.ttl_s * 1000,
    };
    const key = handleKey(args.node_id, args.key);
    this.#handles.set(key, h);
    await this.#backend.set(key, h, args.ttl_s * 1000);
    this.#opts.metrics?.handlesPosted.inc();
    this.#refreshGauges();
    return { expires_at: h.expires_at };
  }

  #liveHandle(node: string, key: string): [string, HandleRecord] | undefined {
    const k = handleKey(node, key);
    const h = this.#handles.get(k);
    if (!h || h.expires_at <= Date.now()) return undefined;
    return [k, h];
  }

  async #getHandle(p: JsonObject): Promise<unknown> {
    const args = checkParams('get_handle', (c) => ({
      node_id: c.string(p.node_id, 'node_id', { nonEmpty: true }),
      key: c.string(p.key, 'key', { nonEmpty: true }),
    }));
    const found = this.#liveHandle(args.node_id, args.key);
    if (!found) return { handle: null };
    this.#opts.metrics?.handlesFetched.inc();
    const [, h] = found;
    return { handle: h.handle, expires_at: h.expires_at, consumers: h.consumers, acked: h.acked };
  }

  /**
   * Records that `consumer` is done with a handle. The handle stays for the other consumers; it
   * goes once every listed consumer has acked (or, with no list, an ack shortens its TTL).
   */
  async #ackHandle(p: JsonObject): Promise<unknown> {
    const args = checkParams('ack_handle', (c) => ({
      node_id: c.string(p.node_id, 'node_id', { nonEmpty: true }),
      key: c.string(p.key, 'key', { nonEmpty: true }),
      consumer: c.string(p.consumer, 'consumer', { nonEmpty: true }),
    }));
    const found = this.#liveHandle(args.node_id, args.key);
    if (!found)
      throw new CoordinatorError(
        ERROR_CODES.notFound,
        `ack_handle: no live handle ${args.key} on node ${args.node_id}`,
      );
    const [k, h] = found;
    if (h.consumers && !h.consumers.includes(args.consumer)) {
      throw refused(`ack_handle: ${args.consumer} is not a consumer of handle ${args.key}`);
    }
    this.#opts.metrics?.handlesAcked.inc();
    const acked = [...new Set([...h.acked, args.consumer])];
    const remaining = h.consumers ? h.consumers.filter((c) => !acked.includes(c)) : null;
    if (remaining && remaining.length === 0) {
      this.#handles.delete(k);
      await this.#backend.delete(k);
      this.#refreshGauges();
      return { removed: true, remaining: [] };
    }
    const now = Date.now();
    const grace = Math.min(this.#opts.handleTtlS * 1000, 5000);
    const expires_at = remaining ? h.expires_at : Math.min(h.expires_at, now + grace);
    const next: HandleRecord = { ...h, acked, expires_at };
    this.#handles.set(k, next);
    await this.#backend.set(k, next, Math.max(1, expires_at - now));
    return { removed: false, remaining };
  }

  async close(): Promise<void> {
    await this.#queue.catch(() => {});
    await this.#backend.close();
  }
}

function checkBool(
  c: { fail(field: string, expected: string, v: unknown): never },
  v: unknown,
  field: string,
): boolean {
  if (typeof v !== 'boolean') c.fail(field, 'true or false', v);
  return v;
}

function checkManifestDoc(method: string, value: unknown): JsonObject {
  return checkParams(method, (c) => {
    const m = c.object(value, 'manifest');
    c.literal(m.schema, 'manifest.schema', 'hotweights.manifest');
    c.string(m.version, 'manifest.version', { nonEmpty: true });
    return m;
  });
}
