/**
 * Device staging (`--device cuda`): each staged bucket is a device allocation (where the transport
 * lands it) plus a host copy of the same size (where the source reads the checkpoint into, and
 * where consumers copy the landed device bytes back to verify them; adapters that only read host
 * memory, like the directory adapter, read that verified copy). With `pinned` the host copies are
 * page-locked (cuMemHostRegister), which real drivers copy to and from much faster.
 *
 * Buckets dropped or released are kept as spares and reused while anything is staged (device
 * allocation is slow on real drivers); once nothing is staged every allocation is freed.
 */
import type { DeviceStagingOptions, PlanBucket, StagedBucket, StagingAgent } from '@hotweights/core';
import { StagingError } from '@hotweights/core';
import { CudaDevice, DeviceMemoryError } from './cuda-device.js';

interface Slot {
  readonly ptr: bigint;
  readonly size: number;
  readonly host: Buffer;
  /** Page-locked with cuMemHostRegister (unregistered before it is dropped). */
  readonly pinned: boolean;
}

interface Entry {
  readonly staged: StagedBucket;
  readonly slot: Slot;
}

export class CudaDeviceStaging implements StagingAgent {
  readonly memoryKind = 'device' as const;
  private readonly versions = new Map<string, Map<number, Entry>>();
  private readonly spares: Slot[] = [];
  /** Why `--pinned` could not page-lock a host copy (then none is pinned), if it could not. */
  pinFailure: string | undefined;

  private constructor(
    readonly device: CudaDevice,
    readonly pinned: boolean,
    readonly rank: number,
  ) {}

  static async open(o: DeviceStagingOptions): Promise<CudaDeviceStaging> {
    let device: CudaDevice;
    try {
      device = CudaDevice.open(o.config, o.localRank);
    } catch (err) {
      throw new StagingError(`--device cuda: ${(err as Error).message.replace(/^cuda-ipc: /, '')}`, {
        cause: err,
      });
    }
    return new CudaDeviceStaging(device, o.pinned, o.rank);
  }

  /**
   * Fails before anything lands when the device cannot hold `bytes` more (what the Replicator
   * needs at once: the window, or the whole share when nothing streams). Spares count as room.
   */
  async ensureCapacity(bytes: number, what: string): Promise<void> {
    const free = this.device.native.device(this.device.ordinal).free;
    const spare = this.spares.reduce((n, s) => n + s.size, 0);
    if (free + spare >= bytes) return;
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    throw new StagingError(
      `--device cuda: device ${this.device.ordinal} has ${mib(free + spare)} MiB free, ${what} needs ${mib(bytes)} MiB: lower HOTWEIGHTS_BUCKET_MB (smaller buckets) or HOTWEIGHTS_INFLIGHT_BUCKETS (fewer at once), or free device memory`,
      { code: 'HW_STAGING_NO_SPACE', details: { device: this.device.ordinal, free: free + spare, bytes } },
    );
  }

  async allocate(version: string, bucket: PlanBucket): Promise<StagedBucket> {
    const have = this.get(version, bucket.bucket_id);
    if (have) return have;
    const slot = this.takeSpare(bucket.size) ?? this.newSlot(bucket, version);
    const staged: StagedBucket = {
      version,
      bucketId: bucket.bucket_id,
      bytes: slot.host.subarray(0, bucket.size),
      device: this.device.buffer(slot.ptr, bucket.size),
    };
    let buckets = this.versions.get(version);
    if (!buckets) {
      buckets = new Map();
      this.versions.set(version, buckets);
    }
    buckets.set(bucket.bucket_id, { staged, slot });
    return staged;
  }

  get(version: string, bucketId: number): StagedBucket | undefined {
    return this.versions.get(version)?.get(bucketId)?.staged;
  }

  list(version: string): readonly StagedBucket[] {
    return [...(this.versions.get(version)?.values() ?? [])]
      .map((e) => e.staged)
      .sort((a, b) => a.bucketId - b.bucketId);
  }

  async drop(version: string, bucketId: number): Promise<void> {
    const buckets = this.versions.get(version);
    const e = buckets?.get(bucketId);
    if (!buckets || !e) return;
    buckets.delete(bucketId);
    if (buckets.size === 0) this.versions.delete(version);
    this.spares.push(e.slot);
    this.freeSparesIfIdle();
  }

  async release(version: string): Promise<void> {
    const buckets = this.versions.get(version);
    if (buckets) {
      this.versions.delete(version);
      for (const e of buckets.values()) this.spares.push(e.slot);
    }
    this.freeSparesIfIdle();
  }

  /** The driver frees a dead process's device memory; nothing of ours outlives a crash. */
  async reclaimStale(): Promise<number> {
    return 0;
  }

  /** Frees every allocation (staged or spare). */
  async close(): Promise<void> {
    for (const v of [...this.versions.keys()]) await this.release(v);
    this.freeSpares();
  }

  private takeSpare(size: number): Slot | undefined {
    // The smallest spare that fits, so large ones stay for large buckets.
    let best = -1;
    this.spares.forEach((s, i) => {
      if (s.size >= size && (best < 0 || s.size < (this.spares[best] as Slot).size)) best = i;
    });
    return best >= 0 ? this.spares.splice(best, 1)[0] : undefined;
  }

  private newSlot(bucket: PlanBucket, version: string): Slot {
    const what = `bucket ${bucket.bucket_id} of ${version} on rank ${this.rank}`;
    let ptr: bigint;
    try {
      ptr = this.device.alloc(bucket.size, what);
    } catch (err) {
      if (!(err instanceof DeviceMemoryError) || this.spares.length === 0) throw this.stagingError(err);
      // Spares too small for this bucket still hold memory: give it back and try once more.
      this.freeSpares();
      try {
        ptr = this.device.alloc(bucket.size, what);
      } catch (again) {
        throw this.stagingError(again);
      }
    }
    const host = Buffer.allocUnsafeSlow(Math.max(bucket.size, 1));
    let pinned = false;
    if (this.pinned && this.pinFailure === undefined) {
      try {
        this.device.native.hostRegister(this.device.ordinal, host);
        pinned = true;
      } catch (err) {
        // Page-locking is a speed-up, never a reason to fail an update: copies stay pageable.
        this.pinFailure = (err as Error).message;
      }
    }
    return { ptr, size: bucket.size, host, pinned };
  }

  private stagingError(err: unknown): StagingError {
    return new StagingError((err as Error).message, {
      cause: err,
      code: err instanceof DeviceMemoryError ? 'HW_STAGING_NO_SPACE' : 'HW_STAGING',
    });
  }

  private freeSparesIfIdle(): void {
    if (this.versions.size === 0) this.freeSpares();
  }

  private freeSpares(): void {
    for (const s of this.spares.splice(0)) {
      if (s.pinned) this.device.native.hostUnregister(this.device.ordinal, s.host);
      this.device.free(s.ptr);
    }
  }
}
