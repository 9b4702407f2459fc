/**
 * The CUDA-IPC window: how many buckets a root keeps exported at once (each holds a device buffer
 * until every consumer has copied it). Fixed at HOTWEIGHTS_INFLIGHT_BUCKETS, or with
 * HOTWEIGHTS_IPC_ADAPT=1 moved one step at a time so a bucket's round trip (export, every
 * consumer's copy, the acks) takes about HOTWEIGHTS_IPC_TARGET_BUCKET_MS, within
 * HOTWEIGHTS_IPC_MIN_INFLIGHT..HOTWEIGHTS_IPC_MAX_INFLIGHT. The recommendation is computed (and
 * exported as a metric) either way, so operators can see what adapting would choose.
 *
 * Metrics (in the registry given to the transport): hotweights_ipc_window,
 * hotweights_ipc_recommended_window, hotweights_ipc_handle_creation_seconds,
 * hotweights_ipc_bucket_seconds (a root's round trip per bucket).
 */
import { createRequire } from 'node:module';
import type { HotweightsConfig } from '@hotweights/core';

interface GaugeLike {
  set(v: number): void;
}
interface HistogramLike {
  observe(v: number): void;
}
interface RegistryLike {
  getSingleMetric(name: string): unknown;
}

/** Smoothing of the bucket-time average: recent buckets count most. */
const EWMA = 0.3;

export class IpcWindow {
  limit: number;
  recommended: number;
  /** Buckets exported now (public for tests of the rule). */
  active = 0;
  private avgMs: number | undefined;
  private readonly waiting: (() => void)[] = [];
  private readonly gauges: {
    window?: GaugeLike;
    recommended?: GaugeLike;
    handle?: HistogramLike;
    bucket?: HistogramLike;
  } = {};

  constructor(
    private readonly config: HotweightsConfig,
    registry?: object,
  ) {
    const base = config.inflightBuckets;
    this.limit = config.ipcAdapt ? clamp(base, config.ipcMinInflight, config.ipcMaxInflight) : base;
    this.recommended = this.limit;
    if (registry && typeof (registry as RegistryLike).getSingleMetric === 'function')
      this.registerMetrics(registry as RegistryLike);
    this.publish();
  }

  /** Waits for room in the window (rejects with the signal's reason). */
  acquire(signal: AbortSignal): Promise<void> {
    if (this.active < this.limit) {
      this.active++;
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const go = () => {
        signal.removeEventListener('abort', onAbort);
        this.active++;
        resolve();
      };
      const onAbort = () => {
        const i = this.waiting.indexOf(go);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      this.waiting.push(go);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Frees a slot; `bucketMs` is the bucket's round trip when it completed. */
  release(bucketMs?: number): void {
    this.active--;
    if (bucketMs !== undefined) this.observe(bucketMs);
    while (this.active < this.limit && this.waiting.length > 0) this.waiting.shift()?.();
  }

  observeHandleCreation(seconds: number): void {
    this.gauges.handle?.observe(seconds);
  }

  private observe(ms: number): void {
    this.gauges.bucket?.observe(ms / 1000);
    this.avgMs = this.avgMs === undefined ? ms : EWMA * ms + (1 - EWMA) * this.avgMs;
    const { ipcTargetBucketMs: target, ipcMinInflight: min, ipcMaxInflight: max } = this.config;
    // Well under the target: room for another bucket in flight; over it: copies contend, back off.
    if (this.avgMs < target * 0.8) this.recommended = clamp(this.limit + 1, min, max);
    else if (this.avgMs > target * 1.25) this.recommended = clamp(this.limit - 1, min, max);
    else this.recommended = clamp(this.limit, min, max);
    if (this.config.ipcAdapt) this.limit = this.recommended;
    this.publish();
  }

  private publish(): void {
    this.gauges.window?.set(this.limit);
    this.gauges.recommended?.set(this.recommended);
  }

  private registerMetrics(registry: RegistryLike): void {
    const prom = createRequire(import.meta.url)('prom-client') as typeof import('prom-client');
    const registers = [registry as unknown as import('prom-client').Registry];
    const get = <T>(name: string, make: () => T): T => (registry.getSingleMetric(name) as T) ?? make();
    this.gauges.window = get(
      'hotweights_ipc_window',
      () =>
        new prom.Gauge({
          name: 'hotweights_ipc_window',
          help: 'CUDA-IPC buckets a root keeps exported at once',
          registers,
        }),
    );
    this.gauges.recommended = get(
      'hotweights_ipc_recommended_window',
      () =>
        new prom.Gauge({
          name: 'hotweights_ipc_recommended_window',
          help: 'CUDA-IPC window the adaptive rule recommends (applied when HOTWEIGHTS_IPC_ADAPT=1)',
          registers,
        }),
    );
    this.gauges.handle = get(
      'hotweights_ipc_handle_creation_seconds',
      () =>
        new prom.Histogram({
          name: 'hotweights_ipc_handle_creation_seconds',
          help: 'Time to export a bucket as a CUDA IPC handle (cuIpcGetMemHandle)',
          buckets: [1e-5, 1e-4, 1e-3, 1e-2, 0.1, 1],
          registers,
        }),
    );
    this.gauges.bucket = get(
      'hotweights_ipc_bucket_seconds',
      () =>
        new prom.Histogram({
          name: 'hotweights_ipc_bucket_seconds',
          help: "A root's round trip per CUDA-IPC bucket: export, every consumer's copy, the acks",
          buckets: [1e-3, 1e-2, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
          registers,
        }),
    );
  }
}

function clamp(v: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, v));
}
