/**
 * One UCP context and worker, its endpoints, and the progress engine that completes tagged sends
 * and receives. UCX calls back nothing: requests are polled with `ucp_request_check_status` (or
 * `ucp_tag_recv_request_test`) after `ucp_worker_progress`, on the JS thread, so no UCX thread
 * ever enters JavaScript. While operations are pending the engine spins for about a millisecond
 * per turn of the event loop (timers, sockets and other promises keep running), as long as data
 * moves. When progress has found nothing for HOTWEIGHTS_UCX_SPIN_US (200 µs; a receive whose
 * sender is not there yet, a send behind a slow link), it arms the worker (`ucp_worker_arm`,
 * context created with UCP_FEATURE_WAKEUP) and sleeps: poll(2) on the worker's event fd runs on
 * libuv's thread pool (one call at a time per worker, at most SLEEP_TIMEOUT_MS) and spinning
 * resumes when UCX signals the fd, an operation is posted or cancelled, or the poll times out.
 * Closing signals the fd (`ucp_worker_signal`) and destroys the worker once the poll returned. Where UCX gives no
 * event fd the engine spins as before (NODE_DEBUG=hotweights-ucx says so once). When nothing is
 * pending, it progresses once a millisecond so that peers' connection set-up and early messages
 * still move; that tick also runs while asleep and wakes the spin if it found progress.
 */
import { debuglog } from 'node:util';
import type { HotweightsConfig } from '@hotweights/core';
import {
  addressOf,
  UCP_EP_CLOSE_FLAG_FORCE,
  UCP_EP_PARAM_FIELD_REMOTE_ADDRESS,
  UCP_FEATURE_TAG,
  UCP_FEATURE_WAKEUP,
  UCP_OP_ATTR_FIELD_FLAGS,
  UCP_OP_ATTR_FLAG_NO_IMM_CMPL,
  UCP_PARAM_FIELD_FEATURES,
  UCP_WORKER_PARAM_FIELD_THREAD_MODE,
  UCS_ERR_BUSY,
  UCS_INPROGRESS,
  UCS_OK,
  UCS_THREAD_MODE_SINGLE,
  type Ucp,
} from './ucp.js';

/** A UCX call or request that ended with an error status. */
export class UcxStatusError extends Error {
  readonly status: number;
  constructor(what: string, status: number, ucp: Ucp) {
    super(`${what}: ${ucp.statusString(status)} (UCX status ${status})`);
    this.name = 'UcxStatusError';
    this.status = status;
  }
}

interface PendingOp {
  readonly request: number;
  readonly recv: boolean;
  /** Held so the buffer UCX writes into or reads from stays alive until the request completes. */
  readonly data: Uint8Array;
  readonly what: string;
  resolve(length: number): void;
  reject(err: Error): void;
}

/** A send or receive in flight. `cancel()` asks UCX to stop it; its promise then rejects. */
export interface Operation {
  readonly done: Promise<number>;
  cancel(): void;
}

const SPIN_MS = 1;
const IDLE_PROGRESS_MS = 1;
/**
 * How long progress must find nothing before the worker is armed and the engine sleeps
 * (HOTWEIGHTS_UCX_SPIN_US): shorter gives back more CPU on a slow link, longer loses less
 * throughput on a fast one (PERFORMANCE.md, 2026-12-04: 0.5 ms cost 60% more CPU at 1 Gbit/s,
 * 0.05 ms 15% of the throughput on loopback).
 */
const DEFAULT_SPIN_US = 200;
/** The longest sleep: a missed signal costs at most this (the idle tick also progresses). */
const SLEEP_TIMEOUT_MS = 100;
const debug = debuglog('hotweights-ucx');
let saidNoWakeup = false;
/** At close, how long cancelled requests get to settle (a rendezvous send cannot always be cancelled). */
const CANCEL_DRAIN_MS = 250;

export interface WorkerOptions {
  /** UCX_NET_DEVICES for this context (`undefined`: UCX's own choice). */
  readonly netDevices?: string | undefined;
  /** How long progress must find nothing before the engine sleeps (default 200 µs). */
  readonly spinUs?: number;
}

/** The worker's options from the configuration (HOTWEIGHTS_UCX_NET_DEVICES, _SPIN_US). */
export function workerOptions(config: Pick<HotweightsConfig, 'ucxNetDevices' | 'ucxSpinUs'>): WorkerOptions {
  return { netDevices: config.ucxNetDevices, spinUs: config.ucxSpinUs };
}

export class UcpWorker {
  readonly address: Uint8Array;
  readonly #ucp: Ucp;
  readonly #context: number;
  readonly #worker: number;
  readonly #eps = new Map<number, number>();
  readonly #pending = new Set<PendingOp>();
  #spinning: NodeJS.Immediate | undefined;
  readonly #idle: NodeJS.Timeout;
  #destroyed = false;
  /** The worker's event fd, or -1: no wakeup, the engine only spins. */
  readonly #efd: number;
  /** When progress last found something (or an operation was posted or settled). */
  #lastActivity = 0;
  /** Armed and waiting for the efd: no spin is scheduled. */
  #asleep = false;
  /** The poll in flight on the thread pool (at most one), settled when it returns. */
  #poll: Promise<void> | undefined;
  /** A poll failed (never seen): then the engine only spins rather than risk a tight loop. */
  #pollFailed = false;
  readonly #idleBeforeSleepMs: number;

  private constructor(
    ucp: Ucp,
    context: number,
    worker: number,
    address: Uint8Array,
    efd: number,
    spinUs: number,
  ) {
    this.#idleBeforeSleepMs = spinUs / 1000;
    this.#ucp = ucp;
    this.#context = context;
    this.#worker = worker;
    this.address = address;
    this.#efd = efd;
    this.#idle = setInterval(() => this.#progressIdle(), IDLE_PROGRESS_MS);
    this.#idle.unref();
  }

  /**
   * Creates the context (tag matching, and wakeup where UCX offers it: else the engine only spins)
   * and a single-threaded worker. Throws UcxStatusError.
   */
  static open(ucp: Ucp, options: WorkerOptions = {}): UcpWorker {
    let why = "libc's poll could not be bound";
    if (ucp.waitReadable) {
      try {
        return UcpWorker.#open(ucp, options, true);
      } catch (err) {
        why = `no UCX wakeup: ${(err as Error).message}`;
      }
    }
    // A failure that is not about wakeup fails here again, and is thrown.
    const worker = UcpWorker.#open(ucp, options, false);
    if (!saidNoWakeup) debug('%s: the progress engine spins while requests wait', why);
    saidNoWakeup = true;
    return worker;
  }

  static #open(ucp: Ucp, options: WorkerOptions, wakeup: boolean): UcpWorker {
    const context = createContext(ucp, options, wakeup);
    const out = [0];
    const status = ucp.workerCreate(
      context,
      { field_mask: UCP_WORKER_PARAM_FIELD_THREAD_MODE, thread_mode: UCS_THREAD_MODE_SINGLE },
      out,
    );
    if (status !== UCS_OK) {
      ucp.cleanup(context);
      throw new UcxStatusError('ucp_worker_create', status, ucp);
    }
    const worker = out[0] ?? 0;
    const efd = wakeup ? ucp.workerGetEfd(worker) : { status: UCS_OK, fd: -1 };
    const address = efd.status === UCS_OK ? ucp.workerGetAddress(worker) : undefined;
    if (!address?.address) {
      ucp.workerDestroy(worker);
      ucp.cleanup(context);
      if (!address) throw new UcxStatusError('ucp_worker_get_efd', efd.status, ucp);
      throw new UcxStatusError('ucp_worker_get_address', address.status, ucp);
    }
    return new UcpWorker(ucp, context, worker, address.address, efd.fd, options.spinUs ?? DEFAULT_SPIN_US);
  }

  /** Whether the engine sleeps on the worker's event fd when nothing moves (else it spins). */
  get wakeup(): boolean {
    return this.#efd >= 0;
  }

  /** Creates the endpoint to `peer` (connection set-up then proceeds during progress). */
  connect(peer: number, address: Uint8Array): void {
    if (this.#eps.has(peer)) return;
    const out = [0];
    const status = this.#ucp.epCreate(
      this.#worker,
      // Default error handling: UCX 1.13's shared-memory transports cannot do PEER mode, and a
      // dead peer is told by the control star (rendezvous.ts), which fails what needs it.
      { field_mask: UCP_EP_PARAM_FIELD_REMOTE_ADDRESS, address: addressOf(address) },
      out,
    );
    if (status !== UCS_OK) throw new UcxStatusError(`ucp_ep_create to rank ${peer}`, status, this.#ucp);
    this.#eps.set(peer, out[0] ?? 0);
  }

  send(peer: number, data: Uint8Array, tag: bigint, what: string): Operation {
    const ep = this.#eps.get(peer);
    if (ep === undefined) return failed(new Error(`${what}: no endpoint to rank ${peer}`));
    const result = this.#ucp.tagSend(ep, addressOf(data), data.byteLength, tag, {});
    return this.#track(result, false, data, what);
  }

  recv(data: Uint8Array, tag: bigint, what: string): Operation {
    // NO_IMM_CMPL: always a request, so the landed length is read the same way every time.
    const result = this.#ucp.tagRecv(this.#worker, addressOf(data), data.byteLength, tag, ~0n, {
      op_attr_mask: UCP_OP_ATTR_FIELD_FLAGS | UCP_OP_ATTR_FLAG_NO_IMM_CMPL,
    });
    return this.#track(result, true, data, what);
  }

  #track(result: number, recv: boolean, data: Uint8Array, what: string): Operation {
    if (this.#destroyed) return failed(new Error(`${what}: the UCX worker is closed`));
    if (result === UCS_OK) return { done: Promise.resolve(data.byteLength), cancel() {} };
    if (result < 0) return failed(new UcxStatusError(what, result, this.#ucp));
    let op: PendingOp | undefined;
    const done = new Promise<number>((resolve, reject) => {
      op = { request: result, recv, data, what, resolve, reject };
    });
    done.catch(() => {}); // an aborted broadcast stops listening; its cancelled requests still settle here
    const pending = op as unknown as PendingOp;
    this.#pending.add(pending);
    this.#kick();
    return {
      done,
      cancel: () => {
        if (!this.#pending.has(pending)) return;
        this.#ucp.requestCancel(this.#worker, pending.request);
        this.#kick(); // the cancelled request settles at the next progress, not at the next event
      },
    };
  }

  /**
   * Spins from the next turn of the event loop, as something happened (wakes a sleeping engine:
   * its poll is left to end).
   */
  #kick(): void {
    this.#asleep = false;
    this.#lastActivity = performance.now();
    this.#schedule();
  }

  #schedule(): void {
    this.#spinning ??= setImmediate(() => this.#spin());
  }

  #spin(): void {
    this.#spinning = undefined;
    if (this.#destroyed) return;
    const start = performance.now();
    const until = start + SPIN_MS;
    // The clock is read every few turns: a turn is a few hundred ns, about the cost of reading it.
    for (let turn = 1, now = start; this.#pending.size > 0; turn++) {
      if (this.#ucp.workerProgress(this.#worker) > 0 || this.#reap()) this.#lastActivity = now;
      if (turn % 8 !== 0) continue;
      now = performance.now();
      if (now - this.#lastActivity >= this.#idleBeforeSleepMs && this.#sleep()) return;
      if (now >= until) break;
    }
    if (this.#pending.size > 0) this.#schedule();
  }

  /**
   * Arms the worker and waits for its efd, once progress has drained every event. False when it
   * cannot (no efd, or UCX still has events: progress on).
   */
  #sleep(): boolean {
    if (this.#efd < 0 || this.#pollFailed || this.#destroyed) return false;
    const status = this.#ucp.workerArm(this.#worker);
    if (status === UCS_ERR_BUSY) return false;
    if (status !== UCS_OK) {
      debug('ucp_worker_arm: %s: spinning on', this.#ucp.statusString(status));
      return false;
    }
    this.#asleep = true;
    // A poll still in flight (from a sleep a posted operation ended early) serves this one too.
    this.#poll ??= new Promise<void>((resolve) => {
      this.#ucp.waitReadable?.(this.#efd, SLEEP_TIMEOUT_MS, (result) => {
        this.#poll = undefined;
        resolve();
        if (result < 0) {
          debug('poll on the UCX event fd failed: the progress engine spins from now on');
          this.#pollFailed = true;
        }
        if (!this.#asleep || this.#destroyed) return;
        // Spin in this callback rather than a turn later: the bytes that woke us are waiting.
        this.#asleep = false;
        this.#lastActivity = performance.now();
        this.#spin();
      });
    });
    return true;
  }

  #progressIdle(): void {
    if (this.#destroyed || this.#spinning) return;
    let progressed = false;
    while (this.#ucp.workerProgress(this.#worker) > 0) progressed = true;
    // Asleep: data moving that the efd did not announce (yet) brings the spin back.
    if ((this.#reap() || progressed) && this.#asleep && this.#pending.size > 0) this.#kick();
  }

  /** Settles the requests UCX has finished; true if there were any. */
  #reap(): boolean {
    let reaped = false;
    for (const op of this.#pending) {
      // ucp_request_check_status costs ~0.1 us through koffi, ucp_tag_recv_request_test (its
      // out-struct) ~3 us: polled every turn, the latter starved progress. It runs once, to read
      // the landed length of a finished receive.
      let status = this.#ucp.requestCheck(op.request);
      if (status === UCS_INPROGRESS) continue;
      let length = op.data.byteLength;
      if (op.recv) ({ status, length } = this.#ucp.recvTest(op.request));
      this.#pending.delete(op);
      this.#ucp.requestFree(op.request);
      reaped = true;
      if (status === UCS_OK) op.resolve(length);
      else op.reject(new UcxStatusError(op.what, status, this.#ucp));
    }
    return reaped;
  }

  /** Progresses until `done` settles or `ms` pass (used while closing, with no event loop help). */
  async #drain(done: () => boolean, ms: number): Promise<void> {
    const until = performance.now() + ms;
    while (!done() && performance.now() < until) {
      this.#ucp.workerProgress(this.#worker);
      this.#reap();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /**
   * Flushes and closes every endpoint (capped: a dead peer never answers a flush; no flush to
   * peers `gone` names), cancels what is still pending, then frees the worker and context.
   */
  async close(limitMs = 2000, { gone }: { gone?: (peer: number) => boolean } = {}): Promise<void> {
    if (this.#destroyed) return;
    clearInterval(this.#idle);
    const closing = new Set<number>();
    // Requests still pending belong to broadcasts that failed (a send whose receiver gave up can
    // never finish): a flush would wait for them, so such endpoints close without one. So do
    // those to peers the caller knows are gone: a flush to them ends in a UCX timeout error.
    const force = { op_attr_mask: UCP_OP_ATTR_FIELD_FLAGS, flags: UCP_EP_CLOSE_FLAG_FORCE };
    for (const [peer, ep] of this.#eps) {
      const r = this.#ucp.epClose(ep, this.#pending.size > 0 || gone?.(peer) ? force : {});
      if (r > 0) closing.add(r);
    }
    this.#eps.clear();
    const settled = () => {
      for (const r of closing) {
        if (this.#ucp.requestCheck(r) !== UCS_INPROGRESS) {
          this.#ucp.requestFree(r);
          closing.delete(r);
        }
      }
      return closing.size === 0;
    };
    await this.#drain(settled, limitMs);
    for (const op of this.#pending) this.#ucp.requestCancel(this.#worker, op.request);
    await this.#drain(() => this.#pending.size === 0, CANCEL_DRAIN_MS);
    this.#destroyed = true;
    if (this.#spinning) clearImmediate(this.#spinning);
    // A poll in flight watches this worker's efd: wake it, and destroy only once it has returned.
    if (this.#poll) {
      this.#ucp.workerSignal(this.#worker);
      await this.#poll;
    }
    for (const op of this.#pending) op.reject(new Error(`${op.what}: the UCX worker closed`));
    // Requests UCX still holds (a send to a peer behind a dead link, a close that did not finish
    // in time) die with the worker, but only released ones: destroying an endpoint that still
    // has an unreleased request trips an assertion in UCX and aborts the process.
    for (const op of this.#pending) this.#ucp.requestFree(op.request);
    for (const r of closing) this.#ucp.requestFree(r);
    this.#pending.clear();
    this.#ucp.workerDestroy(this.#worker);
    this.#ucp.cleanup(this.#context);
  }
}

function failed(err: Error): Operation {
  const done = Promise.reject(err);
  done.catch(() => {}); // the caller may never look (an aborted broadcast)
  return { done, cancel() {} };
}

/** ucp_init with tag matching (and wakeup), honouring UCX_* variables and the NET_DEVICES knob. */
export function createContext(ucp: Ucp, options: WorkerOptions, wakeup = false): number {
  const config = ucp.configRead();
  try {
    if (options.netDevices) {
      const status = ucp.configModify(config, 'NET_DEVICES', options.netDevices);
      if (status !== UCS_OK) throw new UcxStatusError(`NET_DEVICES=${options.netDevices}`, status, ucp);
    }
    const out = [0];
    const features = wakeup ? UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP : UCP_FEATURE_TAG;
    const status = ucp.init({ field_mask: UCP_PARAM_FIELD_FEATURES, features }, config, out);
    if (status !== UCS_OK) throw new UcxStatusError('ucp_init', status, ucp);
    return out[0] ?? 0;
  } finally {
    ucp.configRelease(config);
  }
}
