/**
 * An update through the stand-in vLLM server (packages/adapter-vllm/test/stand-in: a test double
 * of vLLM's HTTP surface whose CPU workers run the real hotweights_vllm extension) at TP 1 and 2:
 * time from begin (staging starts) to committed, and the serving pause (pause to resume), beside
 * a memcpy of the same bytes in the same run. CPU only: it measures the pipeline and the
 * extension's host-side work, not a GPU load.
 *
 * Usage: npm run build && npx tsx --conditions=@hotweights/source bench/vllm/run.ts [--layers 8] [--tp 1,2]
 * (--layers 8 is a ~1.0 GB bf16 Llama: hidden 2048, 16 heads, 8 KV heads, vocab 32000.)
 * Prints a table and writes bench/results/vllm-standin.json.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { VllmAdapter } from '@hotweights/adapter-vllm';
import { createPlan, publish } from '@hotweights/planner';
import { updateOneRank } from '../../packages/adapter-vllm/test/pipeline.js';
import { PYTHON, startStandIn } from '../../packages/adapter-vllm/test/stand-in.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const sizes = {
  vocab_size: 32000,
  hidden_size: 2048,
  intermediate_size: 5504,
  num_hidden_layers: Number(arg('layers', '8')),
  num_attention_heads: 16,
  num_key_value_heads: 8,
};
const tps = arg('tp', '1,2').split(',').map(Number);
const work = mkdtempSync(join(tmpdir(), 'hw-bench-vllm-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-bench-vllm-'));

function memcpySeconds(bytes: number): number {
  const src = Buffer.alloc(bytes, 1);
  const dst = Buffer.allocUnsafe(bytes);
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    src.copy(dst);
    best = Math.min(best, (performance.now() - t0) / 1000);
  }
  return best;
}

const rows: Record<string, unknown>[] = [];
try {
  execFileSync(PYTHON, [
    join(root, 'packages/adapter-vllm/test/stand-in/make_checkpoints.py'),
    work,
    JSON.stringify(sizes),
  ]);
  const manifest = await publish({ checkpoint: join(work, 'v1'), version: 'v1', modelId: 'bench/llama' });
  const plan = createPlan({
    prev: null,
    next: manifest,
    checkpointRoot: join(work, 'v1'),
    nextManifestPath: null,
    bucketBytes: 64 << 20,
  });
  for (const tp of tps) {
    const server = await startStandIn({ tp, devMode: true, sizes });
    try {
      const adapter = new VllmAdapter({ urls: [server.url], commitTimeoutS: 1800, prepareTimeoutS: 1800 });
      const t0 = performance.now();
      await updateOneRank(adapter, plan, manifest, shm);
      const total = (performance.now() - t0) / 1000;
      const memcpy = memcpySeconds(plan.total_bytes);
      rows.push({
        tp,
        gb: +(plan.total_bytes / 1e9).toFixed(3),
        'begin→committed s': +total.toFixed(2),
        'pause s': +(adapter.lastSwitchSeconds ?? 0).toFixed(2),
        'memcpy s': +memcpy.toFixed(3),
        'pause / memcpy': +((adapter.lastSwitchSeconds ?? 0) / memcpy).toFixed(1),
      });
    } finally {
      await server.stop();
    }
  }
} finally {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
}
console.table(rows);
mkdirSync(join(root, 'bench/results'), { recursive: true });
const result = { sizes, cpus: cpus().length, loadavg: loadavg(), rows };
writeFileSync(join(root, 'bench/results/vllm-standin.json'), `${JSON.stringify(result, null, 2)}\n`);
