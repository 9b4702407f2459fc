/**
 * The coordinator's logic, independent of sockets. Each concern lives in its own module under
 * `service/` (membership and leases, the update state machine, manifests, bucket holders,
 * transfer handles) and is reached through one dispatch table; this class owns what they share:
 * recovery from the backend, the token check, and running every request alone (one at a time):
 * each writes its changes to the backend, then publishes its events, so a restarted coordinator
 * reading the backend sees exactly what clients were told.
 */
import { CoordinatorError, type Plan } from '@hotweights/core';
import type { JsonObject } from '@hotweights/manifest';
import { TokenGuard } from './auth.js';
import { type CoordEvent, ERROR_CODES, METHODS, type MethodName } from './protocol.js';
import { HANDLERS, type HandlerContext } from './service/dispatch.js';
import { expireHandles } from './service/handles.js';
import { expireLeases } from './service/membership.js';
import { type CoordinatorServiceOptions, CoordinatorState } from './service/state.js';
import { statusOf } from './service/status.js';
import type { CoordinatorStatus, CurrentRecord, HandleRecord, StoredWorker, UpdateRecord } from './types.js';

export type { CoordinatorServiceOptions } from './service/state.js';

export class CoordinatorService {
  readonly #state: CoordinatorState;
  readonly #guard: TokenGuard;
  readonly #ctx: HandlerContext;
  #queue: Promise<unknown> = Promise.resolve();

  private constructor(opts: CoordinatorServiceOptions) {
    this.#state = new CoordinatorState(opts);
    this.#guard = new TokenGuard(opts.token);
    this.#ctx = { state: this.#state, status: () => this.status() };
  }

  /** Opens the service over a backend, recovering whatever state it holds. */
  static async open(opts: CoordinatorServiceOptions): Promise<CoordinatorService> {
    const svc = new CoordinatorService(opts);
    await svc.#recover();
    return svc;
  }

  get backendKind(): 'memory' | 'redis' {
    return this.#state.backend.kind;
  }

  get publish(): (event: CoordEvent) => void {
    return this.#state.publish;
  }

  set publish(fn: (event: CoordEvent) => void) {
    this.#state.publish = fn;
  }

  async #recover(): Promise<void> {
    const s = this.#state;
    const now = Date.now();
    const b = s.backend;
    s.seq = (await b.get<number>('seq')) ?? 0;
    s.current = (await b.get<CurrentRecord>('current')) ?? s.current;
    for (const [, u] of await b.entries<UpdateRecord>('update:')) s.updates.set(u.version, u);
    // A restarted coordinator gives every known worker a fresh lease: they had no way to
    // heartbeat while it was down. Those that are really gone expire one lease later.
    for (const [, w] of await b.entries<StoredWorker>('worker:')) {
      const renewed = { ...w, lease_expires_at: now + s.opts.leaseS * 1000 };
      s.workers.set(w.worker_id, renewed);
      await b.set(`worker:${w.worker_id}`, renewed);
    }
    for (const [key, h] of await b.entries<HandleRecord>('handle:')) s.handles.set(key, h);
    for (const [key, have] of await b.entries<Record<string, number[]>>('have:')) {
      s.have.set(key.slice('have:'.length), have);
    }
    const active = s.active();
    if (active) s.activePlan = await b.get<Plan>(`plan:${active.version}`);
    s.activeJson = undefined;
    s.refreshGauges();
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
    const handler = HANDLERS[method];
    const done = this.#exclusive(async () => handler(this.#ctx, params));
    const delay = method === 'precommit' ? (this.#state.opts.precommitReplyDelayMs ?? 0) : 0;
    // The test hook holds the reply only, outside the queue: the vote is already stored.
    if (delay <= 0) return done;
    return done.then((r) => new Promise((resolve) => setTimeout(() => resolve(r), delay)));
  }

  status(): CoordinatorStatus {
    return statusOf(this.#state, this.#guard);
  }

  /** Drops workers whose lease ran out and handles whose TTL did (see membership.ts). */
  reap(): Promise<void> {
    return this.#exclusive(async () => {
      const now = Date.now();
      await expireLeases(this.#state, now);
      await expireHandles(this.#state, now);
      this.#state.refreshGauges();
    });
  }

  async close(): Promise<void> {
    await this.#queue.catch(() => {});
    await this.#state.backend.close();
  }
}
