/**
 * The adapter compliance suite against the vLLM adapter, through the stand-in vLLM server (a test
 * double of vLLM's HTTP surface whose TP workers run the real extension on a tiny Llama).
 *
 * How the suite's whole-file model maps onto a running model: a model has a fixed set of
 * parameters, so the suite runs with `fixedEntries` (one entry per checkpoint tensor, its size in
 * bytes) and its versions change tensors' bytes instead of adding, removing or resizing files;
 * `stage` turns each whole-file item into a tensor item (the checkpoint's dtype and shape) staged
 * in a shared-memory segment, as a worker stages it. A reader reads what the server holds through
 * a route that, like vLLM's request path, answers nothing while the server is paused: the suite's
 * concurrent-reader check therefore shows that the adapter pauses around the load (the atomicity
 * a vLLM engine gives), not that the load itself is instantaneous.
 * Nothing to prune: the adapter makes no files (`plantForeign` has no meaning for it).
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { VllmAdapter } from '@hotweights/adapter-vllm';
import { runAdapterCompliance, type VersionFiles } from '@hotweights/compliance/adapter';
import type { AdapterUpdate, ManifestEntry } from '@hotweights/core';
import { publish } from '@hotweights/planner';
import { HostStaging } from '@hotweights/runtime';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, type StandIn, startStandIn } from './stand-in.js';

const work = mkdtempSync(join(tmpdir(), 'hw-vllm-compliance-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-vllm-compliance-'));
let server: StandIn;
let staging: HostStaging;
let tensors: Map<string, ManifestEntry>;

beforeAll(async () => {
  execFileSync(PYTHON, [join(import.meta.dirname, 'stand-in/make_checkpoints.py'), work]);
  const m = await publish({ checkpoint: join(work, 'v1'), version: 'layout', modelId: 'tiny/llama' });
  tensors = new Map();
  for (let i = 0; i < m.size; i++) {
    const e = m.entry(i);
    if (e.kind === 'tensor') tensors.set(e.tensor, e);
  }
  [server, staging] = await Promise.all([
    startStandIn({ tp: 2, devMode: true }),
    HostStaging.open({ dir: shm }),
  ]);
});

afterAll(async () => {
  await server?.stop();
  await staging?.close();
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

/** The suite's whole-file update as a worker hands it over: tensor items in shared memory. */
async function stage(u: AdapterUpdate): Promise<AdapterUpdate> {
  const buckets = [];
  for (const bucket of u.plan.buckets) {
    const into = await staging.allocate(u.plan.version, bucket);
    into.bytes.set(u.staging.get(u.plan.version, bucket.bucket_id)?.bytes as Uint8Array);
    const items = bucket.items.map((it) => {
      const t = tensors.get(it.tensor) as ManifestEntry;
      return { ...it, kind: 'tensor' as const, dtype: t.dtype, shape: t.shape };
    });
    buckets.push({ ...bucket, items });
  }
  return { ...u, plan: { ...u.plan, buckets }, staging };
}

async function readLive(): Promise<VersionFiles | null> {
  const held = await server.get<{ weight_version: string | null; tensors: Record<string, string> }>(
    '/standin/tensors',
  );
  if (held.weight_version === null) return null;
  return new Map(Object.entries(held.tensors).map(([n, b64]) => [n, Buffer.from(b64, 'base64')]));
}

describe('the vLLM adapter through the stand-in server (TP 2)', { timeout: 300_000 }, () => {
  it('passes the adapter compliance suite with the model as a fixed set of tensors', async () => {
    const report = await runAdapterCompliance({
      open: async () => new VllmAdapter({ urls: [server.url], rank: 0 }),
      readLive,
      fixedEntries: new Map([...tensors].map(([n, e]) => [n, e.nbytes])),
      stage,
    });
    expect(report.failures).toEqual([]);
    expect(report.passed).toHaveLength(8);
    // Every commit and rollback of the suite was one pause of the server, resumed.
    const calls = await server.get<string[]>('/standin/calls');
    expect(calls.filter((c) => c.startsWith('pause:')).length).toBe(
      calls.filter((c) => c === 'resume').length,
    );
    expect((await server.get<{ is_paused: boolean }>('/is_paused')).is_paused).toBe(false);
  });
});
