/**
 * Publish throughput on a warm multi-GB checkpoint beside the machine's read limit.
 *
 * Writes a checkpoint of SHARDS safetensors shards (BF16 tensors of 16 MiB, random bytes) into a
 * temp dir, then alternates, REPEAT times: pre-read every file (so the page cache is warm), time
 * `cat files > /dev/null`, pre-read again, time publish() with each hash. Reports median GB/s and
 * publish / cat. Beside them, the in-memory BLAKE3 rate of one thread (a 512 KiB buffer hashed over
 * and over, the size publish reads in) and the load average, so a figure can be read against what
 * one core can hash and how busy the machine was.
 *
 * Usage: node --conditions=@hotweights/source --import tsx bench/planner/publish-bench.ts [GiB]
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { publish, type TensorData, writeSafetensors } from '@hotweights/planner';

const GIB = 1024 ** 3;
const targetGiB = Number(process.argv[2] ?? 2.5);
const TENSOR = 16 * 1024 * 1024;
const PER_SHARD = 40; // 640 MiB shards
const REPEAT = 3;
const repo = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hw-publish-bench-'));
const ckpt = join(dir, 'ckpt');
mkdirSync(ckpt);

const shards = Math.max(1, Math.round((targetGiB * GIB) / (TENSOR * PER_SHARD)));
let total = 0;
for (let s = 0; s < shards; s++) {
  const tensors: Record<string, TensorData> = {};
  for (let t = 0; t < PER_SHARD; t++) {
    const data = randomFillSync(Buffer.allocUnsafe(TENSOR));
    tensors[`model.layers.${s * PER_SHARD + t}.mlp.weight`] = {
      dtype: 'BF16',
      shape: [TENSOR / 2 / 4096, 4096],
      data,
    };
  }
  await writeSafetensors(
    join(ckpt, `model-${String(s + 1).padStart(5, '0')}-of-${String(shards).padStart(5, '0')}.safetensors`),
    tensors,
  );
  total += TENSOR * PER_SHARD;
}
writeFileSync(join(ckpt, 'config.json'), '{}');
const files = readdirSync(ckpt).map((f) => join(ckpt, f));

const cat = () => execFileSync('sh', ['-c', 'cat "$@" > /dev/null', 'cat', ...files]);
const timed = async (fn: () => unknown): Promise<number> => {
  cat(); // pre-read: warm page cache right before the timed run
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

/** One thread hashing `total` bytes from a cache-resident buffer: the per-core BLAKE3 ceiling. */
const { Blake3Hasher } = createRequire(import.meta.url)('@napi-rs/blake-hash') as {
  Blake3Hasher: new () => { update(b: Buffer): void; digest(enc: 'hex'): string };
};
const hashOnly = () => {
  const chunk = randomFillSync(Buffer.allocUnsafe(512 * 1024));
  const h = new Blake3Hasher();
  for (let done = 0; done < total; done += chunk.length) h.update(chunk);
  h.digest('hex');
};

const load = [loadavg()[0] as number];
const times: Record<string, number[]> = { cat: [], blake3: [], 'xxh3-64': [], 'blake3-1-thread': [] };
for (let r = 0; r < REPEAT; r++) {
  (times.cat as number[]).push(await timed(cat));
  (times['blake3-1-thread'] as number[]).push(await timed(hashOnly));
  for (const hash of ['blake3', 'xxh3-64'] as const) {
    (times[hash] as number[]).push(await timed(() => publish({ checkpoint: ckpt, version: 'bench', hash })));
  }
}
rmSync(dir, { recursive: true, force: true });
load.push(loadavg()[0] as number);

const gbps = (s: number) => total / 1e9 / s;
const catRate = gbps(median(times.cat as number[]));
const rows = Object.entries(times).map(([what, ts]) => ({
  what:
    what === 'cat'
      ? 'cat > /dev/null'
      : what === 'blake3-1-thread'
        ? 'BLAKE3 in memory, 1 thread (no reads)'
        : `publish --hash ${what}`,
  median_s: Math.round(median(ts) * 1000) / 1000,
  gb_per_s: Math.round(gbps(median(ts)) * 100) / 100,
  vs_cat: Math.round((gbps(median(ts)) / catRate) * 100) / 100,
}));
console.log(
  `checkpoint: ${shards} shards, ${(total / GIB).toFixed(2)} GiB, warm page cache; ${availableParallelism()} cores; load average ${load.map((l) => l.toFixed(1)).join(' -> ')}`,
);
console.log('what\tmedian_s\tGB/s\tvs cat');
for (const r of rows) console.log(`${r.what}\t${r.median_s}\t${r.gb_per_s}\t${r.vs_cat}`);
mkdirSync(join(repo, 'bench', 'results'), { recursive: true });
writeFileSync(
  join(repo, 'bench', 'results', 'planner-publish.json'),
  `${JSON.stringify({ when: new Date().toISOString(), bytes: total, shards, repeat: REPEAT, cores: availableParallelism(), load_average: load, rows }, null, 2)}\n`,
);
