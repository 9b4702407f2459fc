/**
 * Fan-out benchmark: one bucket from rank 0 to every other rank of a 3- and a 4-rank job, through
 * the ucx transport over TCP and over shared memory, beside the mpi transport doing the same
 * broadcast (mpirun) and `cp` making as many copies of a file, all in the same run and alternating
 * round by round so each sees the same machine state. Prints a table and writes
 * bench/results/ucx-fanout.json.
 *
 * Usage: npx tsx bench/ucx/fanout.ts [--ranks 3,4] [--sizes 64,256] [--iterations 3] [--rounds 2]
 * Time = until every receiver holds the whole bucket: ucx, from the root's call to its resolution
 * (the last rank of the chain acknowledged); mpi, barrier -> broadcast -> barrier (its own bench's
 * node side); cp, the N-1 copies of a file in /dev/shm (warm in the page cache) run one after the
 * other, as a script would. GB/s = bucket bytes / median time (1 GB = 1e9 B).
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { freePort, median, REPO_ROOT as root, run } from './jobs.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const rankCounts = arg('ranks', '3,4').split(',').map(Number);
const sizes = arg('sizes', '64,256').split(',').map(Number);
const iterations = Number(arg('iterations', '3'));
const rounds = Number(arg('rounds', '2'));
const NODE = ['--conditions=@hotweights/source', '--import', 'tsx'];

/** Median seconds per size from rank 0's JSON lines. */
function secondsBySize(out: string): Map<number, number> {
  const bySize = new Map<number, number>();
  for (const l of out.split('\n').filter((x) => x.startsWith('{'))) {
    const { mib, seconds } = JSON.parse(l) as { mib: number; seconds: number[] };
    bySize.set(mib, median(seconds));
  }
  return bySize;
}

async function ucx(ranks: number, tls: string): Promise<Map<number, number>> {
  const env = {
    UCX_TLS: tls,
    WORLD_SIZE: String(ranks),
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(await freePort()),
  };
  const args = [...NODE, 'bench/ucx/bcast-node.ts', sizes.join(','), String(iterations)];
  const outs = await Promise.all(
    Array.from({ length: ranks }, (_, rank) => run(process.execPath, args, { ...env, RANK: String(rank) })),
  );
  return secondsBySize(outs[0] ?? '');
}

async function mpi(ranks: number): Promise<Map<number, number>> {
  const out = await run(
    'mpirun',
    [
      '-n',
      String(ranks),
      '--oversubscribe',
      process.execPath,
      ...NODE,
      'bench/mpi/bcast-node.ts',
      String(iterations),
      ...sizes.map(String),
    ],
    { OMPI_ALLOW_RUN_AS_ROOT: '1', OMPI_ALLOW_RUN_AS_ROOT_CONFIRM: '1', HOTWEIGHTS_MPI_CHUNK_MB: '0' },
  );
  return secondsBySize(out);
}

function cp(ranks: number, dir: string): Map<number, number> {
  const bySize = new Map<number, number>();
  for (const mib of sizes) {
    const src = join(dir, `src-${mib}`);
    writeFileSync(src, Buffer.alloc(mib << 20, 1));
    const seconds: number[] = [];
    for (let i = 0; i <= iterations; i++) {
      const t = process.hrtime.bigint();
      for (let d = 1; d < ranks; d++) execFileSync('cp', [src, join(dir, `dst-${mib}-${d}`)]);
      if (i > 0) seconds.push(Number(process.hrtime.bigint() - t) / 1e9);
      for (let d = 1; d < ranks; d++) rmSync(join(dir, `dst-${mib}-${d}`));
    }
    rmSync(src);
    bySize.set(mib, median(seconds));
  }
  return bySize;
}

const METHODS = ['ucx tcp', 'ucx shm', 'mpi', 'cp'] as const;
type Method = (typeof METHODS)[number];
interface Row {
  ranks: number;
  mib: number;
  seconds: Record<Method, number[]>;
}
const rows: Row[] = [];
const loadBefore = loadavg();
const scratch = mkdtempSync(join('/dev/shm', 'hw-bench-fanout-'));
const ompi = spawnSync('mpirun', ['--version'], { encoding: 'utf8' }).stdout.split('\n')[0] ?? '';
try {
  for (const ranks of rankCounts) {
    const mine = sizes.map(
      (mib) => ({ ranks, mib, seconds: { 'ucx tcp': [], 'ucx shm': [], mpi: [], cp: [] } }) as Row,
    );
    rows.push(...mine);
    for (let r = 0; r < rounds; r++) {
      const results: [Method, Map<number, number>][] = [
        ['ucx tcp', await ucx(ranks, 'tcp')],
        ['ucx shm', await ucx(ranks, 'posix,sysv,cma')],
        ['mpi', await mpi(ranks)],
        ['cp', cp(ranks, scratch)],
      ];
      for (const [method, bySize] of results)
        for (const row of mine) row.seconds[method].push(bySize.get(row.mib) ?? Number.NaN);
      process.stderr.write(`${ranks} ranks, round ${r + 1}/${rounds} done\n`);
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

const gbps = (mib: number, s: number) => (mib * 2 ** 20) / s / 1e9;
console.log(
  `\nFan-out of one bucket from rank 0, ${iterations} iterations x ${rounds} rounds (median), ${cpus().length} cores, load ${loadBefore.map((x) => x.toFixed(2)).join(' ')}; ${ompi}`,
);
console.log(
  `| ranks | bucket | ${METHODS.map((m) => `${m} GB/s`).join(' | ')} | ucx tcp / mpi | ucx shm / mpi | ucx shm / cp |`,
);
console.log(`| --- | --- | ${METHODS.map(() => '---').join(' | ')} | --- | --- | --- |`);
for (const r of rows) {
  const m = Object.fromEntries(METHODS.map((k) => [k, median(r.seconds[k])])) as Record<Method, number>;
  const ratio = (a: Method, b: Method) => `${(m[b] / m[a]).toFixed(2)}x`;
  console.log(
    `| ${r.ranks} | ${r.mib} MiB | ${METHODS.map((k) => gbps(r.mib, m[k]).toFixed(2)).join(' | ')} | ${ratio('ucx tcp', 'mpi')} | ${ratio('ucx shm', 'mpi')} | ${ratio('ucx shm', 'cp')} |`,
  );
}
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(
  join(root, 'bench/results/ucx-fanout.json'),
  `${JSON.stringify({ date: new Date().toISOString(), iterations, rounds, cores: cpus().length, openmpi: ompi, loadBefore, loadAfter: loadavg(), rows }, null, 2)}\n`,
);
