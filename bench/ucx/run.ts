/**
 * UCX benchmark: one bucket of 64 MiB and 256 MiB between 2 processes through the ucx transport,
 * beside `ucx_perftest -t tag_bw` (ucx-utils) with the same UCX_TLS and message size, in the same
 * run and alternating round by round so both see the same machine state. Prints a table and
 * writes bench/results/ucx-bcast.json.
 *
 * Usage: npx tsx bench/ucx/run.ts [--sizes 64,256] [--iterations 5] [--rounds 3] [--tls tcp]
 * GB/s = 1e9 B/s. Ours: bucket bytes / median time from the root's call to its resolution (after
 * the receiver acknowledged the whole bucket). ucx_perftest: its "overall" bandwidth (MiB/s,
 * converted). The ratio is the median over rounds of ours / ucx_perftest within each round.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { freePort, median, REPO_ROOT as root, run } from './jobs.js';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? fallback) : fallback;
}
const sizes = arg('sizes', '64,256').split(',').map(Number);
const iterations = Number(arg('iterations', '5'));
const rounds = Number(arg('rounds', '3'));
const ALL_TRANSPORTS = [
  { name: 'tcp', tls: 'tcp' },
  { name: 'shared memory', tls: 'posix,sysv,cma' },
];
const only = arg('tls', '');
const TRANSPORTS = ALL_TRANSPORTS.filter((t) => !only || t.tls === only);

/** GB/s of `ucx_perftest -t tag_bw` for one message size. */
async function perftest(tls: string, mib: number): Promise<number> {
  const port = String(await freePort());
  const common = ['-t', 'tag_bw', '-s', String(mib << 20), '-n', String(iterations), '-p', port];
  const server = run('ucx_perftest', common, { UCX_TLS: tls });
  let out = '';
  for (let attempt = 0; !out; attempt++) {
    await new Promise((r) => setTimeout(r, 300)); // the server may not be listening yet
    out = await run('ucx_perftest', ['127.0.0.1', ...common], { UCX_TLS: tls }).catch((err: Error) => {
      if (attempt >= 20) throw err;
      return '';
    });
  }
  await server;
  const final = out.split('\n').find((l) => l.startsWith('Final:'));
  const fields = final?.trim().split(/\s+/) ?? [];
  // Final: iterations, overhead 50%, avg, overall, bandwidth avg, overall (MiB/s), rates
  const mibPerSecond = Number(fields[6]);
  if (!Number.isFinite(mibPerSecond)) throw new Error(`no bandwidth in ucx_perftest output:\n${out}`);
  return (mibPerSecond * 2 ** 20) / 1e9;
}

/** GB/s of the ucx transport broadcasting one bucket from rank 0 to rank 1. */
async function ours(tls: string, mib: number): Promise<number> {
  const env = {
    UCX_TLS: tls,
    WORLD_SIZE: '2',
    MASTER_ADDR: '127.0.0.1',
    MASTER_PORT: String(await freePort()),
  };
  const args = [
    '--conditions=@hotweights/source',
    '--import',
    'tsx',
    'bench/ucx/bcast-node.ts',
    String(mib),
    String(iterations),
  ];
  const [out] = await Promise.all(
    [0, 1].map((rank) => run(process.execPath, args, { ...env, RANK: String(rank) })),
  );
  const line = (out ?? '').split('\n').find((l) => l.startsWith('{"mib"'));
  if (!line) throw new Error(`no timings from rank 0:\n${out}`);
  const { seconds } = JSON.parse(line) as { seconds: number[] };
  return (mib * 2 ** 20) / median(seconds) / 1e9;
}

interface Row {
  transport: string;
  tls: string;
  mib: number;
  oursGBps: number[];
  perftestGBps: number[];
  ratios: number[];
}
const rows: Row[] = [];
const loadBefore = loadavg();
for (const { name, tls } of TRANSPORTS) {
  for (const mib of sizes) {
    const row: Row = { transport: name, tls, mib, oursGBps: [], perftestGBps: [], ratios: [] };
    for (let r = 0; r < rounds; r++) {
      const p = await perftest(tls, mib);
      const o = await ours(tls, mib);
      row.perftestGBps.push(p);
      row.oursGBps.push(o);
      row.ratios.push(o / p);
    }
    rows.push(row);
    process.stderr.write(`${name} ${mib} MiB: ratio ${median(row.ratios).toFixed(2)}\n`);
  }
}

const fmt = (x: number) => x.toFixed(2);
console.log(
  `\nUCX, 2 processes, ${iterations} iterations x ${rounds} rounds, ${cpus().length} cores, load ${loadBefore.map(fmt).join(' ')}`,
);
console.log(
  '| UCX_TLS | bucket | ucx transport GB/s | ucx_perftest tag_bw GB/s | ratio (median of rounds) |',
);
console.log('| --- | --- | --- | --- | --- |');
for (const r of rows) {
  console.log(
    `| ${r.tls} | ${r.mib} MiB | ${fmt(median(r.oursGBps))} | ${fmt(median(r.perftestGBps))} | ${fmt(median(r.ratios))}x |`,
  );
}
mkdirSync(`${root}/bench/results`, { recursive: true });
writeFileSync(
  `${root}/bench/results/ucx-bcast.json`,
  `${JSON.stringify({ date: new Date().toISOString(), iterations, rounds, cores: cpus().length, loadBefore, loadAfter: loadavg(), rows }, null, 2)}\n`,
);
