/**
 * Publish throughput on a warm multi-GB checkpoint beside the machine's read limit.
 *
 * Writes a checkpoint of SHARDS safetensors shards (BF16 tensors of 16 MiB, random bytes) into a
 * temp dir, then alternates, REPEAT times: pre-read every file (so the page cache is warm), time
 * `cat files > /dev/null`, pre-read again, time publish() with each hash and each way of reading
 * (memory maps, the default, and read() copies). Beside them, in the same run, each hash's ceiling:
 * as many worker threads as publish uses hashing the same total bytes from memory that is already
 * resident (a 64 MiB buffer per thread, beyond the caches like the page cache is, no reads), and
 * BLAKE3 on one thread. Reports median GB/s, publish / cat and publish / ceiling, the process CPU
 * seconds of each in-process run (all threads) and the load average, since the machine is shared.
 *
 * Beside them, what a user runs against the reference tools, each a fresh process timed from outside
 * by /usr/bin/time (start-up included) and alternated in the same rounds: `b3sum` (Debian's
 * reference BLAKE3, every core, memory maps) over the same files, and `hotweights publish` (the
 * built CLI) with BLAKE3 and with XXH3-64; reported as ratios to `b3sum` and to `cat`. Beside
 * them the Node floor (hash-floor.mjs): a bare `node` hashing the same tensors with publish's
 * hasher on every core and nothing else, the least any Node publish could take.
 *
 * Usage (built packages, after `npm run build`):
 *   node --import tsx bench/planner/publish-bench.ts [GiB] [--shards N] [--embedding-gib E]
 *     [--repeat N] [--compare DIR] [--quick]
 * --repeat N: rounds (default 3). --compare DIR: also `hotweights publish` of another built checkout
 * (main's, for a before and after) in the same rounds. --shards N: N shards (default 640 MiB each).
 * --embedding-gib E: one E GiB tensor (an embedding, like Llama-3-8B's 128256x4096 BF16, ~1 GiB)
 * first in the first shard, within the GiB total: one entry, so one thread hashes it whole.
 * --quick: only the fresh-process rows (cat, b3sum, the Node floor, the CLI) on the re-read layout, a few seconds.
 * From sources (`--conditions=@hotweights/source`) the hash workers start through tsx, which costs
 * each worker a few hundred ms of CPU: fine for tests, not a publish figure.
 */
import { execFileSync } from 'node:child_process';
import { randomFillSync } from 'node:crypto';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { publish, type TensorData, writeSafetensors } from '@hotweights/planner';
import { cpuDescription, type ProcessTime, timeProcess } from '../timed-process.js';

const GIB = 1024 ** 3;
const args = process.argv.slice(2);
const shardsAt = args.indexOf('--shards');
const embeddingAt = args.indexOf('--embedding-gib');
const QUICK = args.includes('--quick');
// The size is the one argument that is neither a flag nor a flag's value.
const compareAt = args.indexOf('--compare');
const COMPARE = compareAt >= 0 ? args[compareAt + 1] : undefined;
const flagValues = new Set(
  [shardsAt, embeddingAt, compareAt, args.indexOf('--repeat')].filter((i) => i >= 0).map((i) => i + 1),
);
const targetGiB = Number(args.find((a, i) => !a.startsWith('--') && !flagValues.has(i)) ?? 2.5);
const TENSOR = 16 * 1024 * 1024;
const SHARDS = shardsAt >= 0 ? Number(args[shardsAt + 1]) : undefined;
// Whole 16 MiB rows, so its shape is [rows, 4096] BF16 like an embedding's.
const EMBEDDING = embeddingAt >= 0 ? Math.round((Number(args[embeddingAt + 1]) * GIB) / TENSOR) * TENSOR : 0;
if (!Number.isSafeInteger(EMBEDDING) || EMBEDDING < 0 || EMBEDDING >= targetGiB * GIB)
  throw new Error(
    `--embedding-gib ${args[embeddingAt + 1]}: expected a size below the ${targetGiB} GiB total`,
  );
const rest = targetGiB * GIB - EMBEDDING;
const PER_SHARD = SHARDS ? Math.max(1, Math.round(rest / (TENSOR * SHARDS))) : 40; // 640 MiB shards
const repeatAt = args.indexOf('--repeat');
const REPEAT = repeatAt >= 0 ? Number(args[repeatAt + 1]) : 3;
const repo = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'hw-publish-bench-'));
const ckpt = join(dir, 'ckpt');
mkdirSync(ckpt);

const shards = SHARDS ?? Math.max(1, Math.round(rest / (TENSOR * PER_SHARD)));
let total = 0;
for (let s = 0; s < shards; s++) {
  const tensors: Record<string, TensorData> = {};
  if (s === 0 && EMBEDDING > 0) {
    tensors['model.embed_tokens.weight'] = {
      dtype: 'BF16',
      shape: [EMBEDDING / 2 / 4096, 4096],
      data: randomFillSync(Buffer.allocUnsafe(EMBEDDING)),
    };
    total += EMBEDDING;
  }
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
const shardFiles = files.filter((f) => f.endsWith('.safetensors'));

const threads = availableParallelism();
const cli = join(repo, 'packages', 'cli', 'bin', 'hotweights.js');
// publish records the checkpoint as a source root under the state dir: keep that in the temp dir.
const cliEnv = { ...process.env, HOTWEIGHTS_STATE_DIR: join(dir, 'state') };
const b3sum = execFileSync('sh', ['-c', 'command -v b3sum || true'], { encoding: 'utf8' }).trim();
if (!b3sum)
  console.error('b3sum not found (scripts/install-system-deps.sh installs it): its rows are left out');
const cliPublish = (extra: string[], bin = cli) => [
  process.execPath,
  bin,
  'publish',
  ...['--checkpoint', ckpt, '--version', 'bench', '--output', join(dir, 'cli.manifest'), ...extra],
];
/** Fresh processes, timed from outside (start-up included), each after a pre-read like the rest. */
const processRuns: Record<string, () => string[]> = {
  'cat-process': () => ['sh', '-c', 'cat "$@" > /dev/null', 'cat', ...files],
  b3sum: () => [b3sum, ...files],
  // The least a Node process takes to BLAKE3 the same tensors (hash-floor.mjs): publish's floor.
  'node-floor': () => [process.execPath, join(repo, 'bench', 'planner', 'hash-floor.mjs'), ...shardFiles],
  'cli-blake3': () => cliPublish([]),
  'cli-xxh3-64': () => cliPublish(['--hash', 'xxh3-64']),
  'cli-blake3-compare': () => cliPublish([], join(COMPARE ?? '', 'packages', 'cli', 'bin', 'hotweights.js')),
};
const processCpu: Record<string, number[]> = {};
const cat = () => execFileSync('sh', ['-c', 'cat "$@" > /dev/null', 'cat', ...files]);
const cpu: Record<string, number[]> = {};
const times: Record<string, number[]> = {};
const record = (into: Record<string, number[]>, key: string, value: number) => {
  into[key] = [...(into[key] ?? []), value];
};
const timed = async (what: string, fn: () => unknown): Promise<number> => {
  cat(); // pre-read: warm page cache right before the timed run
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  await fn();
  const s = (performance.now() - t0) / 1000;
  const c = process.cpuUsage(c0);
  record(cpu, what, (c.user + c.system) / 1e6);
  return s;
};
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;

type Algo = 'blake3' | 'xxh3-64' | 'sha256';
const require = createRequire(import.meta.url);
const CEILING_WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const { randomFillSync } = require('node:crypto');
const SLICE = 16 * 1024 * 1024; // one update per 16 MiB, like one per tensor here
const buf = randomFillSync(Buffer.allocUnsafe(64 * 1024 * 1024));
function makeHasher(algo) {
  if (algo === 'blake3') return new (require(workerData.blakePath).Blake3Hasher)();
  if (algo === 'xxh3-64') return require(workerData.xxhashPath).xxh3.Xxh3.withSeed(0n);
  return require('node:crypto').createHash('sha256');
}
parentPort.on('message', ({ algo, bytes }) => {
  const h = makeHasher(algo);
  for (let done = 0; done < bytes; done += SLICE) {
    const at = done % buf.length;
    h.update(buf.subarray(at, at + Math.min(SLICE, bytes - done)));
  }
  h.digest();
  parentPort.postMessage('done');
});
parentPort.postMessage('ready');
`;
/** `n` threads hashing `total` bytes between them from resident memory: the hash's ceiling. */
async function ceiling(key: string, algo: Algo, n: number): Promise<number> {
  const workerData = {
    blakePath: require.resolve('@napi-rs/blake-hash'),
    xxhashPath: require.resolve('@node-rs/xxhash'),
  };
  const workers = Array.from({ length: n }, () => new Worker(CEILING_WORKER, { eval: true, workerData }));
  try {
    await Promise.all(workers.map((w) => once(w, 'message')));
    return await timed(key, () =>
      Promise.all(
        workers.map((w) => {
          w.postMessage({ algo, bytes: total / n });
          return once(w, 'message');
        }),
      ),
    );
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
}

const io = (await import('@hotweights/shm')).shmAvailable() ? 'mmap' : 'read (shm addon unavailable)';
const load = [loadavg()[0] as number];
const runs: {
  key: string;
  what: string;
  process?: boolean;
  algo?: Algo;
  publish?: { hash: Algo; io: 'mmap' | 'read' };
  n?: number;
}[] = [
  { key: 'cat-process', what: '`cat` > /dev/null (process, timed by /usr/bin/time)', process: true },
  ...(b3sum ? [{ key: 'b3sum', what: '`b3sum`, every core (process)', process: true }] : []),
  {
    key: 'node-floor',
    what: 'Node floor: a bare `node` BLAKE3-ing the tensors on every core (process)',
    process: true,
  },
  { key: 'cli-blake3', what: '`hotweights publish` (BLAKE3, process)', process: true },
  { key: 'cli-xxh3-64', what: '`hotweights publish --hash xxh3-64` (process)', process: true },
  ...(COMPARE
    ? [
        {
          key: 'cli-blake3-compare',
          what: `\`hotweights publish\` of ${COMPARE} (BLAKE3, process)`,
          process: true,
        },
      ]
    : []),
  { key: 'cat', what: 'cat > /dev/null' },
  {
    key: 'blake3-ceiling',
    what: `BLAKE3 in memory, ${threads} threads (ceiling)`,
    algo: 'blake3',
    n: threads,
  },
  { key: 'blake3-1-thread', what: 'BLAKE3 in memory, 1 thread', algo: 'blake3', n: 1 },
  { key: 'blake3', what: 'publish --hash blake3', publish: { hash: 'blake3', io: 'mmap' } },
  {
    key: 'blake3-read',
    what: 'publish --hash blake3, read() copies',
    publish: { hash: 'blake3', io: 'read' },
  },
  {
    key: 'xxh3-64-ceiling',
    what: `XXH3-64 in memory, ${threads} threads (ceiling)`,
    algo: 'xxh3-64',
    n: threads,
  },
  { key: 'xxh3-64', what: 'publish --hash xxh3-64', publish: { hash: 'xxh3-64', io: 'mmap' } },
  {
    key: 'xxh3-64-read',
    what: 'publish --hash xxh3-64, read() copies',
    publish: { hash: 'xxh3-64', io: 'read' },
  },
  {
    key: 'sha256-ceiling',
    what: `SHA-256 in memory, ${threads} threads (ceiling)`,
    algo: 'sha256',
    n: threads,
  },
  { key: 'sha256', what: 'publish --hash sha256', publish: { hash: 'sha256', io: 'mmap' } },
];
/**
 * Two page-cache layouts of the same files. As written: this process wrote them in 512 KiB writes,
 * so the cache holds them in small folios. Re-read: dropped from the cache (dd iflag=nocache) and
 * read back by `cat`, whose 8 MiB readahead fills 2 MiB folios, as for a checkpoint read from disk;
 * those map with one huge-page entry per 2 MiB.
 */
const allLayouts = [
  { key: 'written', what: 'as written (small folios)' },
  { key: 'reread', what: 're-read from disk (2 MiB folios)' },
] as const;
const layouts = QUICK ? allLayouts.filter((l) => l.key === 'reread') : allLayouts;
if (QUICK) runs.splice(0, runs.length, ...runs.filter((r) => r.process || r.key === 'cat'));
const pmdMappedKiB = () =>
  Number(/FilePmdMapped:\s+(\d+)/.exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
const pmdSeen: Record<string, number> = {};
for (const layout of layouts) {
  if (layout.key === 'reread') {
    for (const f of files)
      execFileSync('sh', ['-c', 'sync "$1" && dd if="$1" iflag=nocache count=0 status=none', 'sh', f]);
    cat();
  }
  // Untimed probe: how much of the files publish's workers map with huge-page entries.
  let most = 0;
  await publish({
    checkpoint: ckpt,
    version: 'probe',
    onProgress: () => {
      most = Math.max(most, pmdMappedKiB());
    },
  });
  pmdSeen[layout.key] = most;
  for (let r = 0; r < REPEAT; r++) {
    for (const run of runs) {
      const key = `${layout.key}:${run.key}`;
      let s: number;
      if (run.process) {
        const argv = (processRuns[run.key] as () => string[])();
        let t: ProcessTime | undefined;
        s = await timed(key, () => {
          t = timeProcess(argv, { env: cliEnv, what: run.what });
        });
        // Wall time from here (finer than /usr/bin/time's 10 ms); CPU from /usr/bin/time, the child's.
        record(processCpu, key, (t as ProcessTime).cpu_ms / 1000);
      } else if (run.key === 'cat') s = await timed(key, cat);
      else if (run.publish) {
        const p = run.publish;
        s = await timed(key, () => publish({ checkpoint: ckpt, version: 'bench', hash: p.hash, io: p.io }));
      } else s = await ceiling(key, run.algo as Algo, run.n as number);
      record(times, key, s);
    }
  }
}
rmSync(dir, { recursive: true, force: true });
load.push(loadavg()[0] as number);

const gbps = (s: number) => total / 1e9 / s;
const rate = (key: string) => gbps(median(times[key] as number[]));
const round = (x: number, d = 2) => Math.round(x * 10 ** d) / 10 ** d;
const rows = layouts.flatMap((layout) =>
  runs.map((run) => {
    const key = (k: string) => `${layout.key}:${k}`;
    const ceilingKey = run.publish ? key(`${run.publish.hash}-ceiling`) : undefined;
    return {
      page_cache: layout.what,
      what: run.what,
      median_s: round(median(times[key(run.key)] as number[]), 3),
      gb_per_s: round(rate(key(run.key))),
      vs_cat: round(rate(key(run.key)) / rate(key(run.process ? 'cat-process' : 'cat'))),
      vs_ceiling: ceilingKey ? round(rate(key(run.key)) / rate(ceilingKey)) : null,
      // Median CPU seconds (every thread) of this process, or of the child for process rows;
      // the in-process cat runs in a child this process does not time, so it has none.
      cpu_s: run.process
        ? round(median(processCpu[key(run.key)] as number[]), 3)
        : run.key === 'cat'
          ? null
          : round(median(cpu[key(run.key)] as number[]), 3),
      // Process rows: wall time over b3sum's and over cat's, medians of the same rounds.
      vs_b3sum_time:
        run.process && b3sum
          ? round(median(times[key(run.key)] as number[]) / median(times[key('b3sum')] as number[]))
          : null,
      vs_cat_time: run.process
        ? round(median(times[key(run.key)] as number[]) / median(times[key('cat-process')] as number[]))
        : null,
      // Hashing CPU as a share of publish's: the ceiling's CPU seconds over publish's (1 = no overhead).
      cpu_vs_ceiling: ceilingKey
        ? round(median(cpu[ceilingKey] as number[]) / median(cpu[key(run.key)] as number[]))
        : null,
    };
  }),
);
const cpuInfo = cpuDescription();
console.log(`cpu: ${cpuInfo.model}, ${cpuInfo.cores} cores, flags ${cpuInfo.flags.join(' ')}`);
console.log(
  `checkpoint: ${shards} shards, ${(total / GIB).toFixed(2)} GiB${EMBEDDING ? ` (one ${(EMBEDDING / GIB).toFixed(2)} GiB tensor)` : ''}, warm page cache; ${threads} cores; publish maps files by ${io}; median of ${REPEAT}; load average ${load.map((l) => l.toFixed(1)).join(' -> ')}`,
);
for (const layout of layouts) {
  console.log(
    `\npage cache ${layout.what}: up to ${pmdSeen[layout.key]} KiB of file pages mapped with 2 MiB entries during publish`,
  );
  console.log(
    'what\tmedian_s\tGB/s\tvs cat\tvs ceiling\tCPU s\tCPU: ceiling/publish\ttime / b3sum\ttime / cat',
  );
  for (const r of rows.filter((x) => x.page_cache === layout.what))
    console.log(
      `${r.what}\t${r.median_s}\t${r.gb_per_s}\t${r.vs_cat}\t${r.vs_ceiling ?? ''}\t${r.cpu_s ?? ''}\t${r.cpu_vs_ceiling ?? ''}\t${r.vs_b3sum_time ?? ''}\t${r.vs_cat_time ?? ''}`,
    );
}
mkdirSync(join(repo, 'bench', 'results'), { recursive: true });
writeFileSync(
  join(repo, 'bench', 'results', 'planner-publish.json'),
  `${JSON.stringify({ when: new Date().toISOString(), bytes: total, embedding_bytes: EMBEDDING, shards, repeat: REPEAT, cores: threads, cpu: cpuInfo, io, pmd_mapped_kib: pmdSeen, load_average: load, rows }, null, 2)}\n`,
);
