/**
 * The Replicator: drives any transport through a plan for ONE rank. Every rank of a job calls
 * `replicateRank` with the same plan (the local launcher, `mpirun … hotweights replicate`, and the
 * coordinator's worker agent all do exactly this, once per rank process).
 *
 * - Source rank (`plan.source.rank`): reads each bucket's items from the checkpoint straight into
 *   the bucket buffer (its staging segment when it also consumes the bucket) and broadcasts it to
 *   `sorted unique [source, ...consumer_ranks]`.
 * - Consumer ranks: land each bucket they consume in staging and verify every item's hash (split
 *   tensors once all parts landed). Buckets a rank does not consume never reach it.
 * - A window (config.inflightBuckets / inflightBytes) keeps several buckets in flight so reading,
 *   sending and landing overlap; broadcasts are still issued in plan order on every participant.
 * - Each bucket has a deadline (config.transferTimeoutS) and the whole call an optional signal, so
 *   a dead peer fails the update instead of hanging it.
 *
 * - With `onBucketReady` (an adapter's streaming prepare), each consumed bucket is handed over as
 *   soon as all its items are verified and then dropped from staging, whose segments the next
 *   buckets reuse: staging holds about the window instead of the whole version, and writing the
 *   version overlaps receiving it.
 *
 * - Device staging (a StagingAgent whose buckets carry `device`): the source copies what it read
 *   into the device buffer before sending; a transport that moves device memory lands straight in
 *   the consumers' device buffers (any other lands in host memory, then copied in); then each
 *   consumer copies the landed device bytes back over the bucket's host copy and verifies that, so
 *   the hash covers exactly what the device holds (see docs/DEVICE.md for the cost).
 *
 * Nothing here touches live weights: on success the version is staged and verified and the caller
 * commits through an adapter; on failure everything staged for the version is released and the
 * error names the rank, the bucket and, for bad bytes, the item.
 */

import type {
  DeviceBuffer,
  HotweightsConfig,
  ItemSource,
  LandedRange,
  Plan,
  PlanBucket,
  PlanItem,
  StagingAgent,
  Transport,
} from '@hotweights/core';
import {
  CheckpointError,
  HotweightsError,
  isErrorKind,
  isHotweightsError,
  TimeoutError,
  TransportError,
  VerificationError,
} from '@hotweights/core';
import type { Registry } from 'prom-client';
import { CheckpointReader } from './checkpoint-reader.js';
import { ItemVerifier } from './item-verifier.js';
import { checkPlanWorld } from './plan-world.js';
import { ReplicationWindow } from './replication-window.js';
import { createReplicatorMetrics, type ReplicatorMetrics } from './replicator-metrics.js';
import { checkSourceRoot } from './source-roots.js';
import { VerifyPool } from './verify-pool.js';

export interface ReplicationProgress {
  readonly rank: number;
  readonly version: string;
  readonly bucketsDone: number;
  readonly bucketsTotal: number;
  readonly bytesDone: number;
  readonly bytesTotal: number;
  readonly elapsedS: number;
}

export interface ReplicateRankOptions {
  readonly plan: Plan;
  readonly rank: number;
  readonly worldSize: number;
  /** An open transport of this rank (same rank and world size). */
  readonly transport: Transport;
  /** Where consumed buckets land (HostStaging for shared memory). */
  readonly staging: StagingAgent;
  readonly config: HotweightsConfig;
  /** Aborts the update on this rank (e.g. another rank failed). */
  readonly signal?: AbortSignal;
  /** Called after each bucket this rank completes. */
  readonly onProgress?: (progress: ReplicationProgress) => void;
  /** Registry (createMetricsRegistry) to export the Replicator's metrics in. */
  readonly metrics?: Registry;
  /** Check every landed item's hash (default true). Committing unverified bytes is the caller's call. */
  readonly verify?: boolean;
  /** Checkpoint directory on the source rank (default plan.source.root). */
  readonly sourceRoot?: string;
  /**
   * Takes each consumed bucket once every item in it is verified (split tensors: once all parts
   * are). The bucket is dropped from staging when this resolves (if the staging agent can drop).
   */
  readonly onBucketReady?: (bucket: PlanBucket, bytes: Uint8Array, device?: DeviceBuffer) => Promise<void>;
  /** Keep handed-over buckets staged (peers on this host copy them); default: drop each one. */
  readonly keepStaged?: boolean;
  /**
   * Lands an item straight from the checkpoint file into the adapter's version (an adapter
   * preparation's `copyItem`). Used, on the source rank, for buckets it is the only participant
   * of: their bytes go from the checkpoint to the target in the kernel, with no staging and no
   * broadcast, and every item is verified where it landed. Other buckets are unaffected.
   */
  readonly copyItem?: (item: PlanItem, source: ItemSource) => Promise<LandedRange>;
}

export interface RankReport {
  readonly rank: number;
  readonly version: string;
  readonly role: 'source' | 'consumer' | 'source+consumer' | 'idle';
  /** Buckets this rank sent (source) and landed (consumer). */
  readonly bucketsSent: number;
  readonly bucketsLanded: number;
  readonly bytesSent: number;
  readonly bytesLanded: number;
  readonly itemsVerified: number;
  readonly seconds: number;
}

/** Participants of a bucket's broadcast: the source and the consumers, sorted, unique. */
export function bucketParticipants(plan: Plan, bucket: PlanBucket): number[] {
  return [...new Set([plan.source.rank, ...bucket.consumer_ranks])].sort((a, b) => a - b);
}

/** Every distinct participant set of a plan (what `transport.prepare` receives). */
export function planGroups(plan: Plan): number[][] {
  const groups = new Map<string, number[]>();
  for (const b of plan.buckets) {
    const ranks = bucketParticipants(plan, b);
    groups.set(ranks.join(','), ranks);
  }
  return [...groups.values()];
}

/**
 * Shared memory this rank needs at once: all consumed bytes, or, when buckets are handed on and
 * dropped as they verify, about the window (the largest buckets that can be in flight together).
 */
function stagingNeed(consumed: readonly PlanBucket[], config: HotweightsConfig, streaming: boolean): number {
  const all = consumed.reduce((n, b) => n + b.size, 0);
  if (!streaming) return all;
  const largest = consumed
    .map((b) => b.size)
    .sort((a, b) => b - a)
    .slice(0, config.inflightBuckets);
  let window = largest.reduce((n, x) => n + x, 0);
  if (config.inflightBytes > 0) window = Math.min(window, Math.max(config.inflightBytes, largest[0] ?? 0));
  return Math.min(all, window);
}

/**
 * Buckets that need no broadcast may go in any order: taking them round-robin over the files
 * they start in lets the window hold copies into different files, which run side by side
 * (copies into one file are serialised on its inode lock). Stable within each file.
 */
export function interleaveFiles(buckets: readonly PlanBucket[]): PlanBucket[] {
  const byFile = new Map<string, PlanBucket[]>();
  for (const b of buckets) {
    const file = b.items[0]?.uri ?? '';
    let list = byFile.get(file);
    if (!list) {
      list = [];
      byFile.set(file, list);
    }
    list.push(b);
  }
  const lists = [...byFile.values()];
  const out: PlanBucket[] = [];
  for (let k = 0; out.length < buckets.length; k++)
    for (const list of lists) if (k < list.length) out.push(list[k] as PlanBucket);
  return out;
}

/** Below this many bytes to verify, hashing stays on the main thread (no workers started). */
const POOL_MIN_BYTES = 16 << 20;

/** Bytes rank `rank` lands and verifies from `plan` (the buckets it consumes). */
function consumedBytes(plan: Plan, rank: number): number {
  return plan.buckets.reduce((n, b) => n + (b.consumer_ranks.includes(rank) ? b.size : 0), 0);
}

/**
 * Starts the hash workers that replicating `plan` on `rank` will use, when it will use any: call
 * it before the slow parts of starting an update (finding the transport, meeting the other ranks)
 * so the workers are up when the first bucket lands.
 */
export function prestartHashing(plan: Plan, rank: number, config: HotweightsConfig, verify = true): void {
  if (verify && consumedBytes(plan, rank) >= POOL_MIN_BYTES) void VerifyPool.warm(config.hashThreads);
}

/** Reused buffers for buckets the source sends but does not consume. */
class BufferPool {
  private readonly free: Buffer[] = [];
  take(size: number): Buffer {
    const i = this.free.findIndex((b) => b.length >= size);
    return i >= 0 ? (this.free.splice(i, 1)[0] as Buffer) : Buffer.allocUnsafeSlow(Math.max(size, 1));
  }
  give(b: Buffer): void {
    this.free.push(b);
  }
}

function describe(err: unknown): string {
  return (err as Error)?.message ?? String(err);
}

/** Replicates `plan` on one rank. Resolves when every bucket of this rank is sent / landed and verified. */
export async function replicateRank(options: ReplicateRankOptions): Promise<RankReport> {
  const { plan, rank, worldSize, transport, staging, config } = options;
  checkPlanWorld(plan, { rank, worldSize }, { exactWorldSize: false });
  const verify = options.verify ?? true;
  const source = plan.source.rank;
  const isSource = rank === source;
  const mine = plan.buckets.filter((b) => isSource || b.consumer_ranks.includes(rank));
  const consumed = mine.filter((b) => b.consumer_ranks.includes(rank));
  const role = isSource
    ? consumed.length > 0
      ? 'source+consumer'
      : 'source'
    : consumed.length > 0
      ? 'consumer'
      : 'idle';
  const m: ReplicatorMetrics | undefined = options.metrics
    ? createReplicatorMetrics(options.metrics)
    : undefined;
  m?.window.set(config.inflightBuckets);
  const started = performance.now();
  const bytesTotal = mine.reduce((n, b) => n + b.size, 0);
  let bytesDone = 0;
  let bucketsDone = 0;
  let bytesSent = 0;
  let bytesLanded = 0;
  let bucketsSent = 0;
  let bucketsLanded = 0;
  const landed = new Set<number>();
  const byId = new Map(consumed.map((b) => [b.bucket_id, b]));
  const handOn = options.onBucketReady;
  const copyItem = options.copyItem;
  // Buckets this rank both reads and alone consumes land straight in the adapter's files.
  const direct = new Set(
    copyItem && isSource
      ? consumed.filter((b) => bucketParticipants(plan, b).length === 1).map((b) => b.bucket_id)
      : [],
  );

  const ctrl = new AbortController();
  let firstError: unknown;
  const fail = (err: unknown) => {
    if (firstError === undefined) {
      firstError = err;
      ctrl.abort(err);
    }
  };
  const onOuterAbort = () =>
    fail(
      new HotweightsError(
        'HW_ABORTED',
        `rank ${rank}: update ${plan.version} aborted: ${describe(options.signal?.reason)}`,
        {
          cause: options.signal?.reason,
        },
      ),
    );
  if (options.signal?.aborted) onOuterAbort();
  options.signal?.addEventListener('abort', onOuterAbort, { once: true });

  // A root the plan names is read only when the operator allows it (an explicit sourceRoot is theirs).
  if (isSource && options.sourceRoot === undefined && config.sourceRoots) {
    await checkSourceRoot(plan.source.root, config.sourceRoots);
    // The patch file is read too: `plan --patches` records it beside the checkpoints it allows.
    if (plan.patches) await checkSourceRoot(plan.patches.path, config.sourceRoots);
  }
  const reader = isSource
    ? new CheckpointReader(options.sourceRoot ?? plan.source.root, plan.patches?.path)
    : undefined;
  // Hashing on worker threads pays off once there is more to hash than a worker costs to start.
  const hashBytes = consumedBytes(plan, rank);
  const hashPool =
    verify && hashBytes >= POOL_MIN_BYTES ? await VerifyPool.create(config.hashThreads) : undefined;
  const verifier = new ItemVerifier(rank, () => m?.verifyFailures.inc(), hashPool);
  const pool = new BufferPool();
  let fillTurn: Promise<void> = Promise.resolve();
  const window = new ReplicationWindow(config.inflightBuckets, config.inflightBytes, (buckets, bytes) => {
    m?.inflightBuckets.set(buckets);
    m?.inflightBytes.set(bytes);
  });

  try {
    if (firstError === undefined && transport.prepare) await transport.prepare(planGroups(plan));
    const host = staging as StagingAgent & {
      ensureCapacity?: (bytes: number, what: string) => Promise<void>;
    };
    const consumeBytes = stagingNeed(
      consumed.filter((b) => !direct.has(b.bucket_id)),
      config,
      handOn !== undefined && staging.drop !== undefined && !options.keepStaged,
    );
    if (host.ensureCapacity && consumeBytes > 0)
      await host.ensureCapacity(consumeBytes, `version ${plan.version} on rank ${rank}`);

    const tasks: Promise<void>[] = [];
    // Broadcasts are issued in plan order on every rank: each bucket waits for the previous
    // bucket's broadcast to have been *issued* (not finished), so the window still overlaps.
    let issued: Promise<void> = Promise.resolve();
    for (const bucket of direct.size === mine.length ? interleaveFiles(mine) : mine) {
      if (firstError !== undefined) break;
      try {
        await window.acquire(bucket.size, ctrl.signal);
      } catch {
        break;
      }
      const previous = issued;
      let markIssued!: () => void;
      issued = new Promise<void>((r) => {
        markIssued = r;
      });
      tasks.push(
        runBucket(bucket, previous, markIssued)
          .catch(fail)
          .finally(() => window.release(bucket.size)),
      );
    }
    await Promise.all(tasks);
    if (firstError === undefined && verify) verifier.finish();
    if (firstError === undefined) {
      const missing = consumed.filter((b) => !landed.has(b.bucket_id));
      if (missing.length > 0)
        throw new VerificationError(
          `rank ${rank}: bucket(s) ${missing.map((b) => b.bucket_id).join(', ')} never landed`,
          { details: { rank, buckets: missing.map((b) => b.bucket_id) } },
        );
    }
    if (firstError !== undefined) throw firstError;
  } catch (err) {
    ctrl.abort(err);
    await staging.release(plan.version).catch(() => {});
    throw err;
  } finally {
    options.signal?.removeEventListener('abort', onOuterAbort);
    await reader?.close();
    await hashPool?.close();
  }

  const seconds = (performance.now() - started) / 1000;
  return {
    rank,
    version: plan.version,
    role,
    bucketsSent,
    bucketsLanded,
    bytesSent,
    bytesLanded,
    itemsVerified: verifier.verified,
    seconds,
  };

  /** Gives a verified bucket to `onBucketReady`, then frees its staging for the next buckets. */
  async function handOnBucket(id: number): Promise<void> {
    const bucket = byId.get(id);
    const staged = staging.get(plan.version, id);
    if (!bucket || !staged || !handOn) return;
    if (ctrl.signal.aborted) throw ctrl.signal.reason;
    await handOn(bucket, staged.bytes, staged.device);
    if (!options.keepStaged) await staging.drop?.(plan.version, id);
  }

  async function runBucket(
    bucket: PlanBucket,
    previous: Promise<void>,
    markIssued: () => void,
  ): Promise<void> {
    if (direct.has(bucket.bucket_id)) return landDirect(bucket, previous, markIssued);
    const t0 = performance.now();
    const consume = bucket.consumer_ranks.includes(rank);
    let pooled: Buffer | undefined;
    let device: DeviceBuffer | undefined;
    // Buckets get their memory and their checkpoint bytes one at a time, in plan order: the first
    // bucket is then ready (and its writing can start) after one bucket's work, not after the
    // whole window's, while later buckets' reads still overlap earlier buckets' hashing and writing.
    const myTurn = fillTurn;
    let endTurn!: () => void;
    fillTurn = new Promise<void>((r) => {
      endTurn = r;
    });
    try {
      let data: Uint8Array;
      try {
        await myTurn;
        if (consume) {
          const staged = await staging.allocate(plan.version, bucket);
          data = staged.bytes;
          device = staged.device;
        } else {
          pooled = pool.take(bucket.size);
          data = pooled.subarray(0, bucket.size);
        }
        if (reader) await Promise.all(bucket.items.map((item) => reader.readItem(item, data)));
      } finally {
        endTurn();
      }
      // Device staging: the source's bytes go to its device buffer before they are sent.
      if (device && isSource) await device.copyFromHost(0, data);
      // A transport that moves device memory gets the buffer; any other lands in host memory.
      const onDevice = device && transport.memoryKinds?.includes('device') ? device : undefined;
      await previous;
      if (ctrl.signal.aborted) throw ctrl.signal.reason;
      const timeout = AbortSignal.timeout(config.transferTimeoutS * 1000);
      const signal = AbortSignal.any([ctrl.signal, timeout]);
      let sending: Promise<void>;
      try {
        sending = transport.broadcast({
          bucketId: bucket.bucket_id,
          root: source,
          ranks: bucketParticipants(plan, bucket),
          data,
          ...(onDevice ? { device: onDevice } : {}),
          signal,
        });
      } finally {
        markIssued();
      }
      try {
        await sending;
      } catch (err) {
        if (ctrl.signal.aborted) throw ctrl.signal.reason;
        if (timeout.aborted) {
          throw new TimeoutError(
            `rank ${rank}: bucket ${bucket.bucket_id} did not ${isSource ? 'reach every consumer' : 'arrive'} within ${config.transferTimeoutS} s (HOTWEIGHTS_TRANSFER_TIMEOUT_S)`,
            { cause: err, details: { rank, bucket: bucket.bucket_id } },
          );
        }
        if (isHotweightsError(err) && !isErrorKind(err, 'TransportError')) throw err;
        // Transports name the bucket themselves too ("bucket 7: rank 2 was lost"): say it once.
        const said = describe(err);
        const own = `bucket ${bucket.bucket_id}: `;
        const why = said.startsWith(own) ? said.slice(own.length) : said;
        throw new TransportError(`rank ${rank}: bucket ${bucket.bucket_id}: ${why}`, {
          cause: err,
          details: { rank, bucket: bucket.bucket_id, transport: transport.name },
        });
      }
      if (consume) {
        if (device) {
          if (!onDevice && !isSource) await device.copyFromHost(0, data);
          // What gets hashed is what the device holds: copied back over the host copy.
          await device.copyToHost(0, data);
        }
        const ready = verify ? await verifier.bucketLanded(bucket, data) : [bucket.bucket_id];
        const host = staging as StagingAgent & { seal?: (v: string, id: number) => Promise<void> };
        await host.seal?.(plan.version, bucket.bucket_id);
        landed.add(bucket.bucket_id);
        if (handOn) for (const id of ready) await handOnBucket(id);
      }
      done(bucket, t0, consume ? 'land' : 'send');
    } finally {
      markIssued();
      if (pooled) pool.give(pooled);
    }
  }

  /**
   * A bucket only this (source) rank takes part in: no broadcast, so it only keeps the others'
   * broadcast order (its turn passes once the bucket before it was issued); its items' copies into
   * the adapter's files are queued in its fill turn, and each item is verified where it landed.
   */
  async function landDirect(
    bucket: PlanBucket,
    previous: Promise<void>,
    markIssued: () => void,
  ): Promise<void> {
    void previous.then(markIssued, markIssued);
    const t0 = performance.now();
    const myTurn = fillTurn;
    let endTurn!: () => void;
    fillTurn = new Promise<void>((r) => {
      endTurn = r;
    });
    let landing: Promise<LandedRange[]>;
    try {
      await myTurn;
      if (ctrl.signal.aborted) throw ctrl.signal.reason;
      // The turn passes once the copies are queued: copies into one file still run one at a
      // time (the adapter queues them), copies into different files run side by side.
      landing = Promise.all(bucket.items.map((item) => landItem(item)));
    } finally {
      endTurn();
    }
    const ranges = await landing;
    if (verify) await verifier.bucketLandedInFiles(bucket, ranges);
    landed.add(bucket.bucket_id);
    done(bucket, t0, 'land');
  }

  /** Copies one item from the checkpoint into the adapter's version (see `copyItem`). */
  async function landItem(item: PlanItem): Promise<LandedRange> {
    const file = await (reader as CheckpointReader).file(item.uri);
    const land = copyItem as NonNullable<typeof copyItem>;
    try {
      return await land(item, { file, offset: item.file_offset });
    } catch (err) {
      if ((err as NodeJS.ErrnoException)?.code !== 'ESHORT') throw err;
      throw new CheckpointError(
        `${item.uri} in ${(reader as CheckpointReader).root} ends before item ${item.key} (needs bytes ${item.file_offset}..${item.file_offset + item.nbytes}): the checkpoint changed after publish?`,
        { cause: err, details: { file: item.uri, key: item.key } },
      );
    }
  }

  /** Counts a finished bucket in the report, the metrics and the progress callback. */
  function done(bucket: PlanBucket, t0: number, roleLabel: 'land' | 'send'): void {
    const consume = roleLabel === 'land';
    if (isSource) {
      bucketsSent++;
      bytesSent += bucket.size;
    }
    if (consume) {
      bucketsLanded++;
      bytesLanded += bucket.size;
    }
    bucketsDone++;
    bytesDone += bucket.size;
    const elapsedS = (performance.now() - started) / 1000;
    m?.buckets.inc({ role: roleLabel });
    m?.bytes.inc({ role: roleLabel }, bucket.size);
    m?.bucketSeconds.observe({ role: roleLabel }, (performance.now() - t0) / 1000);
    m?.lastBucketSize.set(bucket.size);
    if (elapsedS > 0) m?.throughput.set({ role: roleLabel }, bytesDone / elapsedS / 1e9);
    options.onProgress?.({
      rank,
      version: plan.version,
      bucketsDone,
      bucketsTotal: mine.length,
      bytesDone,
      bytesTotal,
      elapsedS,
    });
  }
}
