/**
 * Typed client for the coordinator: a DEALER socket with many calls in flight, a deadline per call,
 * and ZeroMQ's own reconnection (a restarted coordinator is found again; calls that were lost with
 * the old connection fail with a TimeoutError the caller may retry).
 */
import { CoordinatorError, type Plan, TimeoutError } from '@hotweights/core';
import { Dealer, Subscriber } from 'zeromq';
import { checkEndpoint, connectable, defaultPubEndpoint } from './endpoint.js';
import type { CoordEvent, EventName, MethodName, RpcReply } from './protocol.js';
import type { CoordinatorStatus, UpdateView, WorkerRecord } from './types.js';
import { requestFrames } from './upload.js';

export interface CoordinatorClientOptions {
  /** Sent with every request (HOTWEIGHTS_COORD_TOKEN). */
  readonly token?: string | undefined;
  /** Per-call deadline, default 10 s. */
  readonly timeoutMs?: number;
}

interface Pending {
  readonly resolve: (value: unknown) => void;
  readonly reject: (err: Error) => void;
  readonly timer: NodeJS.Timeout;
}

let clientCounter = 0;

export class CoordinatorClient {
  readonly endpoint: string;
  readonly #dealer: Dealer;
  readonly #token: string | undefined;
  readonly #timeoutMs: number;
  readonly #pending = new Map<string, Pending>();
  readonly #prefix: string;
  #next = 0;
  #sending: Promise<void> = Promise.resolve();
  #closed = false;

  constructor(endpoint: string, options: CoordinatorClientOptions = {}) {
    this.endpoint = checkEndpoint(endpoint);
    this.#token = options.token;
    this.#timeoutMs = options.timeoutMs ?? 10_000;
    this.#prefix = `${process.pid}.${++clientCounter}`;
    this.#dealer = new Dealer({ linger: 0, reconnectInterval: 100, reconnectMaxInterval: 1000 });
    this.#dealer.connect(endpoint);
    void this.#receive();
  }

  async #receive(): Promise<void> {
    try {
      for await (const frames of this.#dealer) {
        const body = frames[frames.length - 1];
        if (!body) continue;
        let reply: RpcReply;
        try {
          reply = JSON.parse(body.toString('utf8')) as RpcReply;
        } catch {
          continue;
        }
        const key = String(reply.id);
        const pending = this.#pending.get(key);
        if (!pending) continue; // late reply to a call that already timed out
        this.#pending.delete(key);
        clearTimeout(pending.timer);
        if ('error' in reply) {
          const { code, message } = reply.error;
          pending.reject(new CoordinatorError(code, message));
        } else pending.resolve(reply.result);
      }
    } catch {
      // Socket closed.
    }
  }

  /** Calls `method`; rejects with CoordinatorError (server refusal) or TimeoutError. */
  call<T = unknown>(
    method: MethodName,
    params: Record<string, unknown> = {},
    timeoutMs?: number,
  ): Promise<T> {
    if (this.#closed) return Promise.reject(new CoordinatorError('HW_COORD_CLOSED', 'the client is closed'));
    const id = `${this.#prefix}.${++this.#next}`;
    const ms = timeoutMs ?? this.#timeoutMs;
    // Requests over one frame go in parts, each carrying the token (see upload.ts).
    const messages = requestFrames(
      id,
      this.#token,
      Buffer.from(
        JSON.stringify(
          this.#token === undefined ? { id, method, params } : { id, method, params, token: this.#token },
        ),
      ),
    );
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new TimeoutError(
            `coordinator at ${this.endpoint} did not answer ${method} within ${ms / 1000} s (is \`hotweights coord-serve\` running there?)`,
            { details: { endpoint: this.endpoint, method } },
          ),
        );
      }, ms);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      // One send at a time on a DEALER (zeromq refuses concurrent blocking sends).
      this.#sending = this.#sending.then(() =>
        this.#sendAll(messages).catch((err: unknown) => {
          const p = this.#pending.get(id);
          if (!p) return;
          this.#pending.delete(id);
          clearTimeout(p.timer);
          p.reject(
            new CoordinatorError(
              'HW_COORD_UNREACHABLE',
              `cannot send to ${this.endpoint}: ${(err as Error).message}`,
            ),
          );
        }),
      );
    });
  }

  async #sendAll(messages: ReadonlyArray<Buffer | string | Array<Buffer | string>>): Promise<void> {
    for (const m of messages) await this.#dealer.send(m);
  }

  ping(): Promise<{ pong: true; now: number }> {
    return this.call('ping');
  }
  status(): Promise<CoordinatorStatus> {
    return this.call('status');
  }
  listWorkers(): Promise<{ workers: WorkerRecord[] }> {
    return this.call('list_workers');
  }
  submitPlan(
    plan: Plan,
    manifest?: unknown,
  ): Promise<{ version: string; state: string; plan_digest: string; buckets: number }> {
    return this.call('submit_plan', manifest === undefined ? { plan } : { plan, manifest });
  }
  getPlan(
    version?: string,
    options: { withManifest?: boolean } = {},
  ): Promise<{
    plan: Plan;
    state: string | null;
    begun_at: number | null;
    manifest?: Record<string, unknown> | null;
  }> {
    return this.call('get_plan', {
      ...(version === undefined ? {} : { version }),
      ...(options.withManifest ? { with_manifest: true } : {}),
    });
  }
  begin(version: string, options: { autoCommit?: boolean } = {}): Promise<UpdateView> {
    return this.call('begin', { version, auto_commit: options.autoCommit ?? true });
  }
  precommit(args: {
    version: string;
    rank: number;
    digest: string;
    workerId?: string | null;
    /** The worker's lease key, from its register reply. */
    leaseKey?: string | null;
  }): Promise<UpdateView> {
    return this.call('precommit', {
      version: args.version,
      rank: args.rank,
      digest: args.digest,
      worker_id: args.workerId ?? null,
      lease_key: args.leaseKey ?? null,
    });
  }
  commit(version: string): Promise<UpdateView> {
    return this.call('commit', { version });
  }
  abort(args: { version?: string; reason?: string } = {}): Promise<UpdateView> {
    return this.call('abort', { ...args });
  }
  /** One update's record (null when unknown) and the current version: an in-doubt rank's question. */
  getUpdate(version: string): Promise<{ update: UpdateView | null; current_version: string | null }> {
    return this.call('get_update', { version });
  }
  /** Starts a fleet rollback (to the version before the current one, or `to`). */
  rollback(options: { to?: string; autoCommit?: boolean } = {}): Promise<UpdateView> {
    return this.call('rollback', {
      ...(options.to === undefined ? {} : { to: options.to }),
      auto_commit: options.autoCommit ?? true,
    });
  }
  setCurrentManifest(manifest: unknown): Promise<{ version: string }> {
    return this.call('set_current_manifest', { manifest });
  }
  getCurrentManifest(): Promise<{ version: string | null; manifest: Record<string, unknown> | null }> {
    return this.call('get_current_manifest');
  }
  reportHave(
    version: string,
    rank: number,
    bucketIds: readonly number[],
    lease: { workerId: string; leaseKey: string },
  ): Promise<{ buckets: number }> {
    return this.call('report_have', {
      version,
      rank,
      bucket_ids: bucketIds,
      worker_id: lease.workerId,
      lease_key: lease.leaseKey,
    });
  }
  /** Posts this rank's value under a round of the update in progress; `values` once every rank has. */
  rendezvous(args: {
    version: string;
    begunAt: number;
    round: string;
    rank: number;
    value: string;
    lease: { workerId: string; leaseKey: string };
  }): Promise<{ round: string; values: string[] | null; missing: number[] }> {
    return this.call('rendezvous', {
      version: args.version,
      begun_at: args.begunAt,
      round: args.round,
      rank: args.rank,
      value: args.value,
      worker_id: args.lease.workerId,
      lease_key: args.lease.leaseKey,
    });
  }
  whoHas(
    version: string,
    bucketIds?: readonly number[],
  ): Promise<{ version: string; holders: Record<string, number[]> }> {
    return this.call('who_has', bucketIds === undefined ? { version } : { version, bucket_ids: bucketIds });
  }
  postHandle(args: {
    nodeId: string;
    key: string;
    handle: unknown;
    consumers?: readonly string[];
    ttlS?: number;
  }): Promise<{ expires_at: number }> {
    return this.call('post_handle', {
      node_id: args.nodeId,
      key: args.key,
      handle: args.handle,
      ...(args.consumers ? { consumers: args.consumers } : {}),
      ...(args.ttlS === undefined ? {} : { ttl_s: args.ttlS }),
    });
  }
  getHandle(nodeId: string, key: string): Promise<{ handle: unknown; expires_at?: number }> {
    return this.call('get_handle', { node_id: nodeId, key });
  }
  ackHandle(
    nodeId: string,
    key: string,
    consumer: string,
  ): Promise<{ removed: boolean; remaining: string[] | null }> {
    return this.call('ack_handle', { node_id: nodeId, key, consumer });
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const [, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new CoordinatorError('HW_COORD_CLOSED', 'the client was closed'));
    }
    this.#pending.clear();
    this.#dealer.close();
  }
}

/**
 * Receives coordinator events. Events are hints: a subscriber that joins late or misses one (PUB
 * drops under pressure, and nothing is replayed) must re-read `status`; `onGap` says when.
 */
export class EventSubscriber {
  readonly #sub: Subscriber;
  #closed = false;
  #lastSeq = -1;

  constructor(
    pubEndpoint: string,
    onEvent: (event: CoordEvent) => void,
    options: {
      onGap?: (expected: number, got: number) => void;
      /** Only these events (filtered by the publisher); gaps are then not reported. */
      topics?: readonly EventName[];
    } = {},
  ) {
    this.#sub = new Subscriber({ linger: 0, reconnectInterval: 100, reconnectMaxInterval: 1000 });
    this.#sub.connect(checkEndpoint(pubEndpoint, 'pub endpoint'));
    if (options.topics?.length) this.#sub.subscribe(...options.topics);
    else this.#sub.subscribe();
    void this.#run(onEvent, options.topics?.length ? undefined : options.onGap);
  }

  async #run(
    onEvent: (event: CoordEvent) => void,
    onGap?: (expected: number, got: number) => void,
  ): Promise<void> {
    try {
      for await (const [, body] of this.#sub) {
        if (!body) continue;
        let e: CoordEvent;
        try {
          e = JSON.parse(body.toString('utf8')) as CoordEvent;
        } catch {
          continue;
        }
        if (this.#lastSeq >= 0 && e.seq !== this.#lastSeq + 1) onGap?.(this.#lastSeq + 1, e.seq);
        this.#lastSeq = e.seq;
        onEvent(e);
      }
    } catch {
      // closed
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#sub.close();
  }
}

/** The PUB endpoint for a request endpoint: explicit, or request port + 1 on the same host. */
export function eventEndpointFor(endpoint: string, pubEndpoint?: string): string {
  return pubEndpoint ? connectable(pubEndpoint, endpoint) : defaultPubEndpoint(endpoint);
}
