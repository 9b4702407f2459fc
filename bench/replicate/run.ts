/**
 * Replication on one host: a ~2 GiB checkpoint, all tensors changed and 10% changed, to 1, 2 and
 * 4 local ranks with verification and commit into a target directory, beside `cp` of the whole
 * checkpoint to the same number of destinations (parallel cp processes) and a memcpy of the
 * checkpoint's size, all in the same run. Free memory is warmed, inputs pre-read and dirty pages flushed (`sync`)
 * right before every timed run, so neither side pays for the other's writeback, and ours and cp
 * alternate. CPU seconds (user + system, from /usr/bin/time) are recorded beside wall time: they
 * vary far less than wall time on a shared machine. Prints a table and writes
 * bench/results/replicate-ranks-<list>.json (e.g. replicate-ranks-1-2-4.json).
 *
 * Usage: npm run build && npx tsx --conditions=@hotweights/source bench/replicate/run.ts
 *          [--gib 2] [--ranks 1,2,4] [--rounds 2] [--hash blake3|xxh3-64] [--dir /tmp/...]
 * "ours" is the wall time of `hotweights replicate --commit --target` (process start to exit:
 * staging, verification, the delta/full materialisation and the switch), as a user sees it.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPlan, writePlan } from '@hotweights/planner';
import { makeCheckpoints } from './make-checkpoints.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const CLI = join(root, 'packages/cli/dist/bin.js');

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const gib = Number(arg('gib', '2'));
const rankCounts = arg('ranks', '1,2,4').split(',').map(Number);
const rounds = Number(arg('rounds', '2'));
// The manifests' hash, which is what every rank verifies with: blake3 (publish's default) or xxh3-64.
const hash = arg('hash', 'blake3');
const work = arg('dir', '') || mkdtempSync(join(tmpdir(), 'hw-bench-replicate-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-bench-replicate-'));
// The checkpoints are published in this process, not by `hotweights publish`, so the source roots
// the CLI may read are named here.
const env = {
  ...process.env,
  HOTWEIGHTS_STAGING_DIR: staging,
  HOTWEIGHTS_STATE_DIR: join(work, 'state'),
  HOTWEIGHTS_SOURCE_ROOTS: join(work, 'ckpt'),
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** Reads every file of a directory (page cache warm right before a timed run). */
function preRead(dir: string): void {
  for (const f of readdirSync(dir)) readFileSync(join(dir, f));
}

/** Runs a command under /usr/bin/time: wall seconds, CPU seconds (user + sys of it and its children). */
function run(cmd: string, args: string[]): Promise<{ seconds: number; cpu: number; stdout: string }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn('/usr/bin/time', ['-f', 'cpu %U %S', cmd, ...args], {
      cwd: root,
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    child.on('close', (code) => {
      const seconds = (performance.now() - t0) / 1000;
      if (code !== 0) reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${stderr}`));
      const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(stderr);
      resolve({ seconds, cpu: m ? Number(m[1]) + Number(m[2]) : Number.NaN, stdout });
    });
  });
}

async function cpTo(src: string, dests: string[]): Promise<{ seconds: number; cpu: number }> {
  const t0 = performance.now();
  const runs = await Promise.all(dests.map((d) => run('cp', ['-r', src, d])));
  return { seconds: (performance.now() - t0) / 1000, cpu: runs.reduce((n, r) => n + r.cpu, 0) };
}

/**
 * This VM kind hands free memory back to its host, and memory touched for the first time after
 * that fills at a fraction of the usual speed: a run that writes 2 GiB of new page cache pays it
 * or not depending on what the previous run freed. So before each timed run, a child touches
 * (and frees) 3 GiB, leaving host-backed free pages for whichever side runs next.
 */
function warmFreeMemory(): void {
  execFileSync(process.execPath, [
    '-e',
    'const k=[];for(let i=0;i<12;i++){const b=Buffer.allocUnsafeSlow(256<<20);b.fill(1);k.push(b)}',
  ]);
}

/** Free memory warm, page cache warm and no dirty pages pending: the same start for ours and cp. */
function settle(dir: string): void {
  warmFreeMemory();
  preRead(dir);
  execFileSync('sync');
}

function memcpySeconds(bytes: number): number {
  const src = Buffer.alloc(bytes, 1);
  const dst = Buffer.alloc(bytes, 2);
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t0 = performance.now();
    src.copy(dst);
    times.push((performance.now() - t0) / 1000);
  }
  return median(times);
}

console.error(`making a ${gib} GiB checkpoint (base, all-changed, 10%-changed) in ${work} …`);
const inputs = await makeCheckpoints(join(work, 'ckpt'), gib, hash);
const totalBytes = inputs.manifests.all.total_bytes;

interface Row {
  scenario: string;
  ranks: number;
  planned_bytes: number;
  ours_s: number[];
  ours_cpu_s: number[];
  ours_internal_s: number[];
  cp_s: number[];
  cp_cpu_s: number[];
  loadavg_1m: number[];
}
const rows: Row[] = [];
const memcpy = memcpySeconds(totalBytes);

for (const ranks of rankCounts) {
  const common = { checkpointRoot: '', bucketBytes: 64 << 20, worldSize: ranks };
  const fullPath = join(work, `full-${ranks}.json`);
  const basePath = join(work, `base-${ranks}.json`);
  const deltaPath = join(work, `delta-${ranks}.json`);
  const full = createPlan({
    ...common,
    prev: null,
    next: inputs.manifests.all,
    checkpointRoot: inputs.all,
    nextManifestPath: inputs.paths.all,
  });
  await writePlan(full, fullPath);
  await writePlan(
    createPlan({
      ...common,
      prev: null,
      next: inputs.manifests.base,
      checkpointRoot: inputs.base,
      nextManifestPath: inputs.paths.base,
    }),
    basePath,
  );
  const delta = createPlan({
    ...common,
    prev: inputs.manifests.base,
    next: inputs.manifests.ten,
    checkpointRoot: inputs.ten,
    nextManifestPath: inputs.paths.ten,
  });
  await writePlan(delta, deltaPath);
  const replicate = (plan: string, target: string) =>
    run(process.execPath, [
      CLI,
      'replicate',
      '--plan',
      plan,
      '--commit',
      '--target',
      target,
      '--world-size',
      String(ranks),
      '--no-metrics',
      '--json',
    ]);
  const cpDests = (tag: string) => Array.from({ length: ranks }, (_, i) => join(work, `cp-${tag}-${i}`));

  // All changed: a full deployment into an empty target, each round.
  const all: Row = {
    scenario: 'all changed',
    ranks,
    planned_bytes: full.total_bytes,
    ours_s: [],
    ours_cpu_s: [],
    ours_internal_s: [],
    cp_s: [],
    cp_cpu_s: [],
    loadavg_1m: [],
  };
  for (let r = 0; r < rounds; r++) {
    const target = join(work, `target-all-${ranks}`);
    rmSync(target, { recursive: true, force: true });
    settle(inputs.all);
    all.loadavg_1m.push(loadavg()[0] as number);
    const res = await replicate(fullPath, target);
    all.ours_s.push(res.seconds);
    all.ours_cpu_s.push(res.cpu);
    all.ours_internal_s.push(JSON.parse(res.stdout).seconds);
    rmSync(target, { recursive: true, force: true });
    const dests = cpDests('all');
    for (const d of dests) rmSync(d, { recursive: true, force: true });
    settle(inputs.all);
    const cp = await cpTo(inputs.all, dests);
    all.cp_s.push(cp.seconds);
    all.cp_cpu_s.push(cp.cpu);
    for (const d of dests) rmSync(d, { recursive: true, force: true });
  }
  rows.push(all);
  console.error(JSON.stringify(all));

  // 10% changed: the base is live; the delta goes on top; rollback between rounds.
  const ten: Row = {
    scenario: '10% changed',
    ranks,
    planned_bytes: delta.total_bytes,
    ours_s: [],
    ours_cpu_s: [],
    ours_internal_s: [],
    cp_s: [],
    cp_cpu_s: [],
    loadavg_1m: [],
  };
  const target = join(work, `target-ten-${ranks}`);
  rmSync(target, { recursive: true, force: true });
  await replicate(basePath, target);
  for (let r = 0; r < rounds; r++) {
    settle(inputs.ten);
    ten.loadavg_1m.push(loadavg()[0] as number);
    const res = await replicate(deltaPath, target);
    ten.ours_s.push(res.seconds);
    ten.ours_cpu_s.push(res.cpu);
    ten.ours_internal_s.push(JSON.parse(res.stdout).seconds);
    await run(process.execPath, [CLI, 'rollback', '--target', target]);
    const dests = cpDests('ten');
    settle(inputs.ten);
    const cp = await cpTo(inputs.ten, dests);
    ten.cp_s.push(cp.seconds);
    ten.cp_cpu_s.push(cp.cpu);
    for (const d of dests) rmSync(d, { recursive: true, force: true });
  }
  rmSync(target, { recursive: true, force: true });
  rows.push(ten);
  console.error(JSON.stringify(ten));
}

const GB = 1e9;
const table = rows.map((r) => {
  const ours = median(r.ours_s);
  const cp = median(r.cp_s);
  return {
    scenario: r.scenario,
    ranks: r.ranks,
    planned_gib: +(r.planned_bytes / 2 ** 30).toFixed(2),
    ours_s: +ours.toFixed(2),
    ours_replicate_s: +median(r.ours_internal_s).toFixed(2),
    cp_whole_checkpoint_s: +cp.toFixed(2),
    ours_over_cp: +(ours / cp).toFixed(2),
    // Same-round ratios (each round's ours over the cp run right after it), then their median.
    ours_over_cp_paired: +median(r.ours_s.map((o, i) => o / (r.cp_s[i] as number))).toFixed(2),
    ours_cpu_s: +median(r.ours_cpu_s).toFixed(2),
    cp_cpu_s: +median(r.cp_cpu_s).toFixed(2),
    load_1m: +median(r.loadavg_1m).toFixed(1),
    ours_gbps_per_rank: +(r.planned_bytes / ours / GB).toFixed(2),
  };
});
console.log(
  `checkpoint ${(totalBytes / 2 ** 30).toFixed(2)} GiB; memcpy of that size ${memcpy.toFixed(2)} s (${(totalBytes / memcpy / GB).toFixed(1)} GB/s)`,
);
console.log(`manifest hash (what every rank verifies): ${hash}`);
console.table(table);
const result = {
  date: new Date().toISOString(),
  machine: {
    cores: cpus().length,
    total_mem_gib: +(totalmem() / 2 ** 30).toFixed(1),
    free_mem_gib: +(freemem() / 2 ** 30).toFixed(1),
    loadavg: loadavg(),
  },
  node: process.version,
  checkpoint_bytes: totalBytes,
  hash,
  rounds,
  memcpy_s: memcpy,
  rows: table,
  raw: rows,
};
mkdirSync(join(root, 'bench/results'), { recursive: true });
// One file per set of rank counts, so a 1-rank run does not overwrite the 2- and 4-rank figures.
const out = `bench/results/replicate-ranks-${rankCounts.join('-')}${hash === 'blake3' ? '' : `-${hash}`}.json`;
writeFileSync(join(root, out), `${JSON.stringify(result, null, 2)}\n`);
console.error(`wrote ${out}; inputs in ${work}`);
rmSync(staging, { recursive: true, force: true });
if (!process.argv.includes('--dir')) rmSync(work, { recursive: true, force: true });
