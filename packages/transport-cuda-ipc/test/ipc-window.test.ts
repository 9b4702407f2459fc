/** The CUDA-IPC window: fixed or adaptive, and its metrics in a real prom-client registry. */
import { loadConfig } from '@hotweights/core';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { IpcWindow } from '../src/ipc-window.js';

async function gauge(registry: Registry, name: string): Promise<number | undefined> {
  const m = registry.getSingleMetric(name);
  return (await m?.get())?.values[0]?.value;
}

describe('IpcWindow', () => {
  it('keeps the fixed window and only recommends when HOTWEIGHTS_IPC_ADAPT is off', async () => {
    const registry = new Registry();
    const w = new IpcWindow(
      loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '3', HOTWEIGHTS_IPC_TARGET_BUCKET_MS: '100' }),
      registry,
    );
    await w.acquire(new AbortController().signal);
    w.release(10); // far under the target: room for more
    expect([w.limit, w.recommended]).toEqual([3, 4]);
    expect(await gauge(registry, 'hotweights_ipc_window')).toBe(3);
    expect(await gauge(registry, 'hotweights_ipc_recommended_window')).toBe(4);
    const bucket = await registry.getSingleMetric('hotweights_ipc_bucket_seconds')?.get();
    expect(bucket?.values.find((v) => v.metricName === 'hotweights_ipc_bucket_seconds_sum')?.value).toBe(
      0.01,
    );
  });

  it('adapts one step at a time within the bounds', () => {
    const w = new IpcWindow(
      loadConfig({
        HOTWEIGHTS_IPC_ADAPT: '1',
        HOTWEIGHTS_INFLIGHT_BUCKETS: '2',
        HOTWEIGHTS_IPC_MIN_INFLIGHT: '1',
        HOTWEIGHTS_IPC_MAX_INFLIGHT: '3',
        HOTWEIGHTS_IPC_TARGET_BUCKET_MS: '100',
      }),
    );
    const limits: number[] = [];
    for (const ms of [10, 10, 10]) {
      w.active = 1;
      w.release(ms);
      limits.push(w.limit);
    }
    for (const ms of [1000, 1000, 1000, 1000]) {
      w.active = 1;
      w.release(ms);
      limits.push(w.limit);
    }
    // Up to the max while buckets are fast; the first slow bucket pulls the average over 1.25x the
    // target, and the window steps down to the min.
    expect(limits).toEqual([3, 3, 3, 2, 1, 1, 1]);
  });

  it('holds a root at the window until a slot is released, and lets an abort out', async () => {
    const w = new IpcWindow(loadConfig({ HOTWEIGHTS_INFLIGHT_BUCKETS: '1' }));
    const ctrl = new AbortController();
    await w.acquire(ctrl.signal);
    let second = false;
    const waiting = w.acquire(ctrl.signal).then(() => {
      second = true;
    });
    await new Promise((r) => setImmediate(r));
    expect(second).toBe(false);
    w.release();
    await waiting;
    expect(second).toBe(true);
    const stuck = new AbortController();
    const third = w.acquire(stuck.signal);
    stuck.abort(new Error('bucket deadline'));
    await expect(third).rejects.toThrow('bucket deadline');
  });

  it('records handle creation times in the histogram', async () => {
    const registry = new Registry();
    const w = new IpcWindow(loadConfig({}), registry);
    w.observeHandleCreation(0.002);
    const h = await registry.getSingleMetric('hotweights_ipc_handle_creation_seconds')?.get();
    expect(
      h?.values.find((v) => v.metricName === 'hotweights_ipc_handle_creation_seconds_count')?.value,
    ).toBe(1);
  });
});
