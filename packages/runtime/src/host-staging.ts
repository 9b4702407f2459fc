/**
 * Host staging: every staged bucket is a shared-memory segment in the staging dir
 * (HOTWEIGHTS_STAGING_DIR, default /dev/shm) named
 * `hotweights.p<pid>.<nonce>.<version>.r<rank>.b<bucket>.seg`, so other processes on the host
 * (the vLLM extension) map the same bytes. Segments go away on release (commit, abort, rollback
 * expiry); a new HostStaging reclaims those of crashed runs. Released segments, and single buckets
 * dropped once an adapter consumed them, are kept as spares (up to `spareBytes`) while anything is
 * staged and reused: memory touched before fills ~6x faster than fresh pages, and a mapping already
 * faulted in costs nothing. Once nothing is staged, the spares go too.
 */
import { mkdir, rename, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { PlanBucket, StagedBucket, StagingAgent } from '@hotweights/core';
import { StagingError } from '@hotweights/core';
import {
  createSegment,
  ensureSpace,
  fileSafe,
  flushSegment,
  loadShm,
  newRunTag,
  reclaimStaleSegments,
  registerSharedBytes,
  type Segment,
  segmentName,
  unregisterSharedBytes,
  zeroCopyUnavailableReason,
} from './shm-segment.js';

export interface HostStagingOptions {
  /** Staging directory (config.stagingDir). */
  readonly dir: string;
  /** Rank of this process, part of segment names so ranks on one host never collide. */
  readonly rank?: number;
  /** Bytes of released segments kept for reuse (default 1 GiB; 0 disables reuse). */
  readonly spareBytes?: number;
}

interface Entry {
  readonly staged: StagedBucket;
  readonly segment: Segment;
}

export class HostStaging implements StagingAgent {
  readonly dir: string;
  readonly rank: number;
  /** `p<pid>.<nonce>` of this process's segments. */
  readonly run: string;
  /** True when segments are shared mappings; false when the addon is missing (see `fallbackReason`). */
  readonly zeroCopy: boolean;
  readonly fallbackReason: string | undefined;
  private readonly versions = new Map<string, Map<number, Entry>>();
  private readonly spares: Segment[] = [];
  private readonly spareLimit: number;
  private spareCounter = 0;

  private constructor(options: HostStagingOptions, zeroCopy: boolean) {
    this.dir = options.dir;
    this.rank = options.rank ?? 0;
    this.run = newRunTag();
    this.spareLimit = options.spareBytes ?? 2 ** 30;
    this.zeroCopy = zeroCopy;
    this.fallbackReason = zeroCopy ? undefined : zeroCopyUnavailableReason();
  }

  /** Creates the staging dir if needed and reclaims stale segments of crashed runs. */
  static async open(options: HostStagingOptions): Promise<HostStaging> {
    try {
      await mkdir(options.dir, { recursive: true });
    } catch (err) {
      throw new StagingError(`cannot create staging dir ${options.dir}: ${(err as Error).message}`, {
        cause: err,
        details: { dir: options.dir },
      });
    }
    const staging = new HostStaging(options, (await loadShm()) !== null);
    await staging.reclaimStale();
    return staging;
  }

  /** Fails with StagingError before anything is written when `bytes` would not fit. */
  async ensureCapacity(bytes: number, what = `${bytes} staged bytes`): Promise<void> {
    await ensureSpace(this.dir, Math.max(0, bytes - this.spareBytes()), what);
  }

  async allocate(version: string, bucket: PlanBucket): Promise<StagedBucket> {
    const existing = this.get(version, bucket.bucket_id);
    if (existing) return existing;
    const name = segmentName(this.run, fileSafe(version), `r${this.rank}`, `b${bucket.bucket_id}`, 'seg');
    const path = join(this.dir, name);
    let segment: Segment;
    const spare = bucket.size > 0 ? this.takeSpare(bucket.size) : undefined;
    if (spare) {
      await rename(spare.path, path);
      segment = { ...spare, path };
    } else {
      await ensureSpace(this.dir, bucket.size, `bucket ${bucket.bucket_id} of ${version}`);
      segment = await createSegment(path, bucket.size);
    }
    if (segment.mapped) registerSharedBytes(segment.bytes, path);
    const staged: StagedBucket = {
      version,
      bucketId: bucket.bucket_id,
      bytes: segment.bytes.subarray(0, bucket.size),
      segment: { path, offset: 0, length: bucket.size },
    };
    let buckets = this.versions.get(version);
    if (!buckets) {
      buckets = new Map();
      this.versions.set(version, buckets);
    }
    buckets.set(bucket.bucket_id, { staged, segment });
    return staged;
  }

  /** Makes a landed bucket visible in its segment file (needed only without the addon). */
  async seal(version: string, bucketId: number): Promise<void> {
    const e = this.versions.get(version)?.get(bucketId);
    if (e) await flushSegment(e.segment, e.staged.bytes.byteLength);
  }

  get(version: string, bucketId: number): StagedBucket | undefined {
    return this.versions.get(version)?.get(bucketId)?.staged;
  }

  list(version: string): readonly StagedBucket[] {
    const buckets = this.versions.get(version);
    if (!buckets) return [];
    return [...buckets.values()].map((e) => e.staged).sort((a, b) => a.bucketId - b.bucketId);
  }

  /** Versions with staged buckets in this process. */
  versionsStaged(): readonly string[] {
    return [...this.versions.keys()];
  }

  /**
   * Drops one bucket of `version` once its bytes were handed on (the adapter wrote them): its
   * segment becomes a spare, so a version larger than the window reuses the window's memory.
   */
  async drop(version: string, bucketId: number): Promise<void> {
    const entry = this.versions.get(version)?.get(bucketId);
    if (!entry) return;
    this.versions.get(version)?.delete(bucketId);
    await this.retire(entry.segment, this.spareBytes());
  }

  /**
   * Drops every bucket of `version`. Spares serve the next buckets of an update in progress; once
   * nothing is staged (the update ended, the process is idle) they are removed too, so an idle
   * worker holds no shared memory.
   */
  async release(version: string): Promise<void> {
    const buckets = this.versions.get(version);
    if (!buckets) return;
    this.versions.delete(version);
    const idle = this.versions.size === 0;
    // Idle: nothing is kept (retire removes what does not fit).
    let kept = idle ? Number.POSITIVE_INFINITY : this.spareBytes();
    for (const { segment } of buckets.values()) kept += await this.retire(segment, kept);
    if (idle) await this.releaseSpares();
  }

  /** Removes every spare segment. */
  async releaseSpares(): Promise<void> {
    for (const s of this.spares.splice(0)) {
      unregisterSharedBytes(s.bytes);
      await rm(s.path, { force: true });
    }
  }

  /** The smallest spare that holds `size` bytes, taken out of the pool. */
  private takeSpare(size: number): Segment | undefined {
    let best = -1;
    this.spares.forEach((s, i) => {
      const n = s.bytes.byteLength;
      if (n >= size && (best < 0 || n < (this.spares[best] as Segment).bytes.byteLength)) best = i;
    });
    return best >= 0 ? this.spares.splice(best, 1)[0] : undefined;
  }

  private spareBytes(): number {
    return this.spares.reduce((n, s) => n + s.bytes.byteLength, 0);
  }

  /** Keeps a released segment as a spare while `kept` allows, else removes it. Returns bytes kept. */
  private async retire(segment: Segment, kept: number): Promise<number> {
    const size = segment.bytes.byteLength;
    if (segment.mapped && size > 0 && kept + size <= this.spareLimit) {
      const sparePath = join(this.dir, segmentName(this.run, 'spare', String(this.spareCounter++), 'seg'));
      await rename(segment.path, sparePath);
      registerSharedBytes(segment.bytes, sparePath);
      this.spares.push({ ...segment, path: sparePath });
      return size;
    }
    unregisterSharedBytes(segment.bytes);
    await rm(segment.path, { force: true });
    return 0;
  }

  async reclaimStale(): Promise<number> {
    return reclaimStaleSegments(this.dir);
  }

  /** Releases every version and removes the spares. */
  async close(): Promise<void> {
    for (const v of [...this.versions.keys()]) {
      const buckets = this.versions.get(v);
      this.versions.delete(v);
      for (const { segment } of buckets?.values() ?? []) await rm(segment.path, { force: true });
    }
    await this.releaseSpares();
  }
}
