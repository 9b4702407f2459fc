/**
 * MPI broadcast benchmark: the mpi transport beside a C program doing plain MPI_Bcast of the
 * same sizes, built with mpicc and run in the same benchmark, alternating so both see the same
 * machine state. Prints a table and writes bench/results/mpi-bcast.json.
 *
 * Usage: npx tsx bench/mpi/run.ts [--ranks 2,3] [--sizes 16,64,256,512] [--iterations 5] [--rounds 3]
 * Throughput is bytes / (time from a barrier before the broadcast to a barrier after it), i.e.
 * the rate at which every receiving rank got the whole bucket (GB = 1e9 B): the median of every
 * timed iteration. The ratios are medians over rounds of (C time / our time) within each round,
 * whose runs are back to back, so slow drifts of a shared machine cancel out.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = fileURLToPath(new URL('../../', import.meta.url));

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const rankCounts = arg('ranks', '2,3').split(',').map(Number);
const sizes = arg('sizes', '16,64,256,512').split(',').map(Number);
const iterations = Number(arg('iterations', '5'));
const rounds = Number(arg('rounds', '3'));

const env = {
  ...process.env,
  OMPI_ALLOW_RUN_AS_ROOT: '1',
  OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1',
};

const loadBefore = loadavg();
const work = mkdtempSync(join(tmpdir(), 'hw-bench-mpi-'));
const cBinary = join(work, 'bcast');
execFileSync('mpicc', ['-O2', '-o', cBinary, join(here, 'bcast.c')]);

interface Line {
  ranks: number;
  mib: number;
  seconds: number[];
}

function job(ranks: number, command: string[], extraEnv: Record<string, string> = {}): Line[] {
  const r = spawnSync('mpirun', ['-n', String(ranks), '--oversubscribe', ...command], {
    cwd: root,
    env: { ...env, ...extraEnv },
    encoding: 'utf8',
    timeout: 600_000,
  });
  if (r.status !== 0) throw new Error(`mpirun ${command.join(' ')} failed (${r.status}): ${r.stderr}`);
  if (r.stderr.includes('wrong bytes')) throw new Error(`wrong bytes delivered: ${r.stderr}`);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Line);
}

const node = ['node', '--conditions=@hotweights/source', '--import', 'tsx', join(here, 'bcast-node.ts')];
const variants: { name: string; run: (ranks: number) => Line[] }[] = [
  { name: 'C MPI_Bcast', run: (n) => job(n, [cBinary, String(iterations), ...sizes.map(String)]) },
  {
    name: 'mpi transport, 16 MiB chunks',
    run: (n) =>
      job(n, [...node, String(iterations), ...sizes.map(String)], { HOTWEIGHTS_MPI_CHUNK_MB: '16' }),
  },
  {
    name: 'mpi transport, unchunked',
    run: (n) => job(n, [...node, String(iterations), ...sizes.map(String)], { HOTWEIGHTS_MPI_CHUNK_MB: '0' }),
  },
];

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

// seconds[variant|ranks|mib] -> every timed iteration of every round; perRound -> each round's median
const seconds = new Map<string, number[]>();
const perRound = new Map<string, number[]>();
const key = (v: string, n: number, mib: number) => `${v}|${n}|${mib}`;
for (let round = 0; round < rounds; round++) {
  for (const n of rankCounts) {
    for (const v of variants) {
      for (const line of v.run(n)) {
        const k = key(v.name, n, line.mib);
        seconds.set(k, [...(seconds.get(k) ?? []), ...line.seconds]);
        perRound.set(k, [...(perRound.get(k) ?? []), median(line.seconds)]);
      }
    }
  }
  process.stderr.write(`round ${round + 1}/${rounds} done\n`);
}

/** Median over rounds of (C time / our time) for runs made back to back: robust to load drift. */
const pairedRatio = (v: string, n: number, mib: number) => {
  const c = perRound.get(key('C MPI_Bcast', n, mib)) ?? [];
  const ours = perRound.get(key(v, n, mib)) ?? [];
  return median(c.map((t, i) => t / (ours[i] ?? Number.NaN)));
};

const C = 'C MPI_Bcast';
const CHUNKED = 'mpi transport, 16 MiB chunks';
const WHOLE = 'mpi transport, unchunked';
const rows: Record<string, unknown>[] = [];
for (const n of rankCounts) {
  for (const mib of sizes) {
    const bytes = mib * 1024 * 1024;
    const all = (v: string) => seconds.get(key(v, n, mib)) ?? [Number.NaN];
    const medianGbps = (v: string) => bytes / median(all(v)) / 1e9;
    const bestGbps = (v: string) => bytes / Math.min(...all(v)) / 1e9;
    rows.push({
      ranks: n,
      mib,
      samples: all(C).length,
      c_gbps: medianGbps(C),
      mpi_chunked_gbps: medianGbps(CHUNKED),
      mpi_unchunked_gbps: medianGbps(WHOLE),
      c_best_gbps: bestGbps(C),
      mpi_chunked_best_gbps: bestGbps(CHUNKED),
      mpi_unchunked_best_gbps: bestGbps(WHOLE),
      chunked_vs_c: pairedRatio(CHUNKED, n, mib),
      unchunked_vs_c: pairedRatio(WHOLE, n, mib),
      chunked_vs_c_best: bestGbps(CHUNKED) / bestGbps(C),
      unchunked_vs_c_best: bestGbps(WHOLE) / bestGbps(C),
    });
  }
}

// Two views of the same runs: medians (what a loaded machine gives) and best-of (what it gives
// in its quieter moments); ratios paired per round, and of the best times.
const fmt = (x: unknown) => (typeof x === 'number' ? x.toFixed(2) : String(x));
const pct = (x: unknown) => `${((x as number) * 100).toFixed(0)}%`;
const header = [
  'ranks',
  'MiB',
  'C median / best GB/s',
  'mpi 16 MiB chunks median / best',
  'mpi unchunked median / best',
  'chunked/C paired / best',
  'unchunked/C paired / best',
];
const table = rows.map((r) => [
  String(r.ranks),
  String(r.mib),
  `${fmt(r.c_gbps)} / ${fmt(r.c_best_gbps)}`,
  `${fmt(r.mpi_chunked_gbps)} / ${fmt(r.mpi_chunked_best_gbps)}`,
  `${fmt(r.mpi_unchunked_gbps)} / ${fmt(r.mpi_unchunked_best_gbps)}`,
  `${pct(r.chunked_vs_c)} / ${pct(r.chunked_vs_c_best)}`,
  `${pct(r.unchunked_vs_c)} / ${pct(r.unchunked_vs_c_best)}`,
]);
const widths = header.map((h, i) => Math.max(h.length, ...table.map((r) => (r[i] as string).length)));
const line = (cells: string[]) => `| ${cells.map((c, i) => c.padStart(widths[i] as number)).join(' | ')} |`;
console.log(line(header));
console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
for (const r of table) console.log(line(r));

const mpiVersion = execFileSync('mpirun', ['--version'], { encoding: 'utf8' }).split('\n')[0];
mkdirSync(join(root, 'bench/results'), { recursive: true });
const out = join(root, 'bench/results/mpi-bcast.json');
writeFileSync(
  out,
  `${JSON.stringify(
    {
      benchmark: 'mpi-bcast',
      date: new Date().toISOString(),
      machine: {
        loadavg1mBeforeAfter: [loadBefore[0], loadavg()[0]],
        cores: cpus().length,
        memGiB: Math.round(totalmem() / 2 ** 30),
        node: process.version,
        mpi: mpiVersion,
      },
      settings: { iterations, rounds, sizesMiB: sizes, ranks: rankCounts },
      rows,
    },
    null,
    2,
  )}\n`,
);
console.log(
  `load average (1 min) before/after: ${loadBefore[0]?.toFixed(1)}/${loadavg()[0]?.toFixed(1)} on ${cpus().length} cores`,
);
console.log(`wrote ${out}`);
rmSync(work, { recursive: true, force: true });
