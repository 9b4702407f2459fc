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
 *          [--cases all,ten] [--target-dir DIR[,DIR...]]
 * "ours" is the wall time of `hotweights replicate --commit --target` (process start to exit:
 * staging, verification, the delta/full materialisation and the switch), as a user sees it.
 * `--target-dir` puts the targets and cp's destinations in each DIR in turn (default: beside the
 * inputs), one row per filesystem: bench/replicate/xfs.sh passes a loop-mounted XFS and an ext4
 * folder. For the 10%-changed case the first round also records the space the new version and
 * cp's copy took (filesystem blocks used, after `sync`), the bytes of the new version's files
 * that share extents with the live version (FIEMAP, `filefrag -v`), and checks that the live
 * version still holds the base checkpoint's bytes.
 */
import { execFileSync } from 'node:child_process';
import {
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { cpus, freemem, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createPlan, writePlan } from '@hotweights/planner';
import { timeCommand } from '../timed-process.js';
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
const cases = arg('cases', 'all,ten').split(',');
const targetDirs = arg('target-dir', '') ? arg('target-dir', '').split(',') : [work];
const staging = mkdtempSync(join('/dev/shm', 'hw-bench-replicate-'));
// Removed however the run ends (the inputs too, unless --dir named where to keep them).
process.on('exit', () => {
  rmSync(staging, { recursive: true, force: true });
  if (!process.argv.includes('--dir')) rmSync(work, { recursive: true, force: true });
});
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
const run = (cmd: string, args: string[]) => timeCommand([cmd, ...args], { cwd: root, env });

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

const FS_TYPES: Record<number, string> = {
  1481003842: 'xfs',
  61267: 'ext4',
  2435016766: 'btrfs',
  16914836: 'tmpfs',
};
function fsType(dir: string): string {
  const t = statfsSync(dir).type;
  return FS_TYPES[t] ?? `0x${t.toString(16)}`;
}

/** Bytes in use on the filesystem holding `dir`, after writing back what is dirty. */
function usedBytes(dir: string): number {
  execFileSync('sync');
  const s = statfsSync(dir);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Bytes of a file whose extents are shared with another file (FIEMAP's shared flag). */
function sharedBytes(file: string): number {
  const out = execFileSync('filefrag', ['-v', file], { encoding: 'utf8' });
  const block = Number(/blocks? of (\d+) bytes/.exec(out)?.[1] ?? 4096);
  let shared = 0;
  for (const line of out.split('\n')) {
    const m = /^\s*\d+:\s+\d+\.\.\s*\d+:\s+\d+\.\.\s*\d+:\s+(\d+):.*\bshared\b/.exec(line);
    if (m) shared += Number(m[1]) * block;
  }
  return shared;
}

interface NewVersionSpace {
  /** Filesystem blocks the delta took (all ranks' targets), after sync. */
  allocated_bytes: number;
  /** The same for cp's copies of the whole checkpoint. */
  cp_allocated_bytes: number;
  /** Files of the new version that are hard links to the live ones (nothing in them changed). */
  linked_files: number;
  /** Files of the new version written for it, their bytes, and how many of those share extents. */
  written_files: number;
  written_file_bytes: number;
  shared_bytes: number;
  /** The live version's files hold the base checkpoint's bytes after the delta (cmp). */
  live_intact: boolean;
}

/** What the new version of each rank target is made of, beside its live version. */
function inspectVersions(
  targets: string[],
  base: string,
): Omit<NewVersionSpace, 'allocated_bytes' | 'cp_allocated_bytes'> {
  const r = { linked_files: 0, written_files: 0, written_file_bytes: 0, shared_bytes: 0, live_intact: true };
  for (const t of targets) {
    const [next, live] = [join(t, 'versions/v1-ten'), join(t, 'versions/v0')];
    for (const f of readdirSync(next)) {
      const s = statSync(join(next, f));
      if (s.ino === statSync(join(live, f)).ino) {
        r.linked_files++;
        continue;
      }
      r.written_files++;
      r.written_file_bytes += s.size;
      r.shared_bytes += sharedBytes(join(next, f));
      try {
        execFileSync('cmp', ['-s', join(live, f), join(base, f)]);
      } catch {
        r.live_intact = false;
      }
    }
  }
  return r;
}

console.error(
  `making a ${gib} GiB checkpoint (base, ${cases.includes('all') ? 'all-changed, ' : ''}10%-changed) in ${work} …`,
);
const inputs = await makeCheckpoints(join(work, 'ckpt'), gib, hash, cases.includes('all'));
const totalBytes = inputs.manifests.base.total_bytes;
const uptimeAtStart = execFileSync('uptime', { encoding: 'utf8' }).trim();

interface Row {
  scenario: string;
  ranks: number;
  target_fs: string;
  target_dir: string;
  space?: NewVersionSpace;
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
  for (const dir of targetDirs) {
    const fs = fsType(dir);
    const cpDests = (tag: string) => Array.from({ length: ranks }, (_, i) => join(dir, `cp-${tag}-${i}`));
    const newRow = (scenario: string, planned: number): Row => ({
      scenario,
      ranks,
      target_fs: fs,
      target_dir: dir,
      planned_bytes: planned,
      ours_s: [],
      ours_cpu_s: [],
      ours_internal_s: [],
      cp_s: [],
      cp_cpu_s: [],
      loadavg_1m: [],
    });

    if (cases.includes('all')) {
      // All changed: a full deployment into an empty target, each round.
      const all = newRow('all changed', full.total_bytes);
      for (let r = 0; r < rounds; r++) {
        const target = join(dir, `target-all-${ranks}`);
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
    }

    if (cases.includes('ten')) {
      // 10% changed: the base is live; the delta goes on top; rollback between rounds.
      const ten = newRow('10% changed', delta.total_bytes);
      const target = join(dir, `target-ten-${ranks}`);
      const rankTargets =
        ranks > 1 ? Array.from({ length: ranks }, (_, i) => join(target, `rank-${i}`)) : [target];
      rmSync(target, { recursive: true, force: true });
      await replicate(basePath, target);
      for (let r = 0; r < rounds; r++) {
        settle(inputs.ten);
        const before = r === 0 ? usedBytes(dir) : 0;
        ten.loadavg_1m.push(loadavg()[0] as number);
        const res = await replicate(deltaPath, target);
        ten.ours_s.push(res.seconds);
        ten.ours_cpu_s.push(res.cpu);
        ten.ours_internal_s.push(JSON.parse(res.stdout).seconds);
        // The first round's new version (later rounds replace the rolled-back one).
        const allocated = r === 0 ? usedBytes(dir) - before : 0;
        const inspected = r === 0 ? inspectVersions(rankTargets, inputs.base) : undefined;
        await run(process.execPath, [CLI, 'rollback', '--target', target]);
        const dests = cpDests('ten');
        settle(inputs.ten);
        const cpBefore = r === 0 ? usedBytes(dir) : 0;
        const cp = await cpTo(inputs.ten, dests);
        ten.cp_s.push(cp.seconds);
        ten.cp_cpu_s.push(cp.cpu);
        if (inspected)
          ten.space = {
            allocated_bytes: allocated,
            cp_allocated_bytes: usedBytes(dir) - cpBefore,
            ...inspected,
          };
        for (const d of dests) rmSync(d, { recursive: true, force: true });
      }
      rmSync(target, { recursive: true, force: true });
      rows.push(ten);
      console.error(JSON.stringify(ten));
    }
  }
}

const GB = 1e9;
const table = rows.map((r) => {
  const ours = median(r.ours_s);
  const cp = median(r.cp_s);
  return {
    scenario: r.scenario,
    ranks: r.ranks,
    target_fs: r.target_fs,
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
const MiB = 2 ** 20;
const spaceRows = rows.filter((r) => r.space);
if (spaceRows.length) {
  console.log('space the 10%-changed version took (first round, all ranks; after sync):');
  console.table(
    spaceRows.map((r) => {
      const s = r.space as NewVersionSpace;
      return {
        target_fs: r.target_fs,
        ranks: r.ranks,
        ours_allocated_mib: +(s.allocated_bytes / MiB).toFixed(0),
        cp_allocated_mib: +(s.cp_allocated_bytes / MiB).toFixed(0),
        linked_files: s.linked_files,
        written_files: s.written_files,
        written_file_mib: +(s.written_file_bytes / MiB).toFixed(0),
        shared_mib: +(s.shared_bytes / MiB).toFixed(0),
        live_intact: s.live_intact,
      };
    }),
  );
}
const result = {
  date: new Date().toISOString(),
  uptime: { start: uptimeAtStart, end: execFileSync('uptime', { encoding: 'utf8' }).trim() },
  cases,
  target_dirs: targetDirs.map((d) => ({ dir: d, fs: fsType(d) })),
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
const suffix = [
  hash === 'blake3' ? '' : `-${hash}`,
  cases.length === 2 ? '' : `-${cases.join('-')}`,
  arg('target-dir', '') ? `-${targetDirs.map(fsType).join('-')}` : '',
].join('');
const out = `bench/results/replicate-ranks-${rankCounts.join('-')}${suffix}.json`;
writeFileSync(join(root, out), `${JSON.stringify(result, null, 2)}\n`);
console.error(`wrote ${out}; inputs in ${work}`);
