/**
 * The stored-digest check of a mapped manifest, in the background: recomputing the digest hashes
 * every column (a 100 MB manifest: a few hundred ms of SHA-256), so a `map: true` load leaves it
 * to a worker thread (digest-worker.ts) that maps the same file, while this thread goes on
 * (planning); checkManifestFileUnchanged, which callers run before acting on a mapped manifest,
 * then waits for the verdict. Waiting blocks this thread (Atomics.wait on a shared slot, the
 * verdict's details read with receiveMessageOnPort), so the check fits a synchronous call. When
 * the worker cannot answer (it did not start, or failed), the digest is checked here instead.
 */
import { MessageChannel, type MessagePort, receiveMessageOnPort, type Worker } from 'node:worker_threads';
import type { ColumnarManifest } from './columnar-manifest.js';
import { digestMismatchError } from './columnar-manifest.js';
import { siblingModule, startModuleWorker } from './worker-module.js';

/** Slot values of a job's shared Int32Array. */
export const DIGEST_PENDING = 0;
export const DIGEST_DONE = 1;
export const DIGEST_FAILED = 2;

/** The worker's `workerData`: one Int32 slot it sets to 1 as soon as its module runs. */
export interface DigestWorkerData {
  readonly booted: SharedArrayBuffer;
}

export interface DigestRequest {
  readonly path: string;
  /** One Int32 slot: DIGEST_PENDING until the worker posts its reply, then DONE or FAILED. */
  readonly signal: SharedArrayBuffer;
  readonly port: MessagePort;
}

/** Posted on the job's port before the slot is set: the content's digest, or why there is none. */
export type DigestReply = { readonly digest: string } | { readonly error: string };

interface PendingCheck {
  readonly slot: Int32Array;
  readonly port: MessagePort;
  readonly path: string;
}

/** Longest wait for a verdict before checking here (a worker that died never answers). */
const WAIT_MS = 120_000;
/** Longest wait for the worker to start (one that cannot load its module never does). */
const BOOT_MS = 20_000;

// Stryker disable next-line StringLiteral: equivalent: only moves the digest check from the worker to this thread, same verdict (no worker module: checked here)
const DIGEST_WORKER = siblingModule('digest-worker', import.meta.url);
let worker: Worker | undefined;
// Stryker disable next-line BooleanLiteral: equivalent: only moves the digest check from the worker to this thread, same verdict (the fallback below)
let workerBroken = false;
let booted: Int32Array | undefined;
const pending = new WeakMap<ColumnarManifest, PendingCheck>();
/** Slots of the checks not answered yet, failed at once if the worker dies. */
const unanswered = new Set<Int32Array>();

// Stryker disable all: equivalent: only moves the digest check from the worker to this thread, same verdict (a dead worker's checks fall back here); reached only when the worker thread dies
function workerGone(): void {
  workerBroken = true;
  worker = undefined;
  for (const slot of unanswered) Atomics.store(slot, 0, DIGEST_FAILED);
  unanswered.clear();
}
// Stryker restore all

// Stryker disable next-line BlockStatement: equivalent: only moves the digest check from the worker to this thread, same verdict (no worker: checked here)

function digestWorker(): Worker | undefined {
  // Stryker disable next-line all: equivalent: only moves the digest check from the worker to this thread, same verdict
  if (workerBroken) return undefined;
  // Stryker disable next-line all: equivalent: only moves the digest check from the worker to this thread, same verdict (no worker, or one per check)
  if (!worker) {
    const data: DigestWorkerData = { booted: new SharedArrayBuffer(4) };
    // Stryker disable all: equivalent: only moves the digest check from the worker to this thread, same verdict (a worker that cannot start, or one without its boot slot, waited for BOOT_MS: checked here)
    try {
      worker = startModuleWorker(DIGEST_WORKER, { workerData: data });
    } catch {
      workerBroken = true;
      return undefined;
    }
    // Stryker restore all
    booted = new Int32Array(data.booted);
    // Stryker disable next-line StringLiteral: equivalent: only moves the digest check from the worker to this thread, same verdict (a dead worker's checks fall back here)
    worker.on('error', workerGone);
    // Stryker disable next-line StringLiteral: equivalent: only moves the digest check from the worker to this thread, same verdict (a dead worker's checks fall back here)
    worker.on('exit', workerGone);
    // Idle, it must not keep the process alive.
    worker.unref();
  }
  return worker;
}

/** A check started before its manifest exists (see startDigestJob). */
export type DigestJob = PendingCheck;

/**
 * Starts computing the digest of the content of the mapped file at `path` on the worker, before
 * the manifest is parsed (the parse and the hashing overlap); undefined when no worker runs (then
 * finishDigestCheck checks here). Hand it to assignDigestJob, or to dropDigestJob if the parse fails.
 */
// Stryker disable next-line BlockStatement: equivalent: only moves the digest check from the worker to this thread, same verdict (finishDigestCheck checks here when no job started)
export function startDigestJob(path: string): DigestJob | undefined {
  const w = digestWorker();
  // Stryker disable next-line all: equivalent: only moves the digest check from the worker to this thread, same verdict
  if (!w) return undefined;
  const signal = new SharedArrayBuffer(4);
  const { port1, port2 } = new MessageChannel();
  const request: DigestRequest = { path, signal, port: port2 };
  w.postMessage(request, [port2]);
  const slot = new Int32Array(signal);
  unanswered.add(slot);
  return { slot, port: port1, path };
}

/** The verdict of `job` is the one finishDigestCheck(manifest) waits for. */
export function assignDigestJob(manifest: ColumnarManifest, job: DigestJob | undefined): void {
  if (job) pending.set(manifest, job);
}

/** Forgets a job whose manifest was never made (its file failed to parse). */
// Stryker disable next-line BlockStatement: equivalent: a dropped job is never read again, so keeping it only holds its port and slot a while longer; no verdict changes (and a reply already queued stays readable after close(), so no test can tell)
export function dropDigestJob(job: DigestJob | undefined): void {
  if (!job) return;
  unanswered.delete(job.slot);
  job.port.close();
}

/** Starts checking `manifest`'s stored digest against the content of `path` (its mapped file). */
export function startDigestCheck(manifest: ColumnarManifest, path: string): void {
  assignDigestJob(manifest, startDigestJob(path));
}

/**
 * Throws the digest error when `manifest` (loaded from `path`) does not match its stored digest:
 * waits for the background check started at load, or checks here when none could start.
 */
export function finishDigestCheck(manifest: ColumnarManifest, path: string): void {
  const job = pending.get(manifest);
  pending.delete(manifest);
  // Stryker disable next-line all: equivalent: only moves the digest check from the worker to this thread, same verdict (no job only when no worker started)
  if (!job) {
    manifest.verifyDigest(path);
    return;
  }
  unanswered.delete(job.slot);
  // Blocks this thread; the worker runs on. A worker that never started gets BOOT_MS.
  // Stryker disable next-line all: equivalent: only moves the digest check from the worker to this thread, same verdict (not waiting leaves the slot pending: checked here)
  if (booted && Atomics.load(booted, 0) === 0) Atomics.wait(booted, 0, 0, BOOT_MS);
  // Stryker disable next-line all: equivalent: only moves the digest check from the worker to this thread, same verdict (not waiting leaves the slot pending: checked here)
  if (booted && Atomics.load(booted, 0) === 1) Atomics.wait(job.slot, 0, DIGEST_PENDING, WAIT_MS);
  const reply = receiveMessageOnPort(job.port)?.message as DigestReply | undefined;
  job.port.close();
  // Stryker disable next-line all: Stryker's instrumented copy of this module does not run in the worker thread, so under Stryker every check falls back here; test/manifest-load.test.ts ('checks here when the worker cannot read the file') fails on these mutants when they are applied by hand
  if (Atomics.load(job.slot, 0) !== DIGEST_DONE || !reply || !('digest' in reply)) {
    manifest.verifyDigest(path);
    return;
  }
  if (reply.digest !== manifest.digest) throw digestMismatchError(path, reply.digest, manifest.digest);
}
