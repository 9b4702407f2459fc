/**
 * Patches against the tensor-level delta when the bytes cross a link (issue #16). Two hosts on
 * this machine (network namespaces on a bridge: packages/transport-ucx/test/netns.ts), one
 * `hotweights replicate --commit` rank on each over UCX on TCP, started the torchrun way. Rank 0
 * reads the plan's source (the step-2 checkpoint, or the patch file) and everything rank 1 lands
 * crosses host 0's link, whose sending rate `tc qdisc … tbf` caps: one row per rate ("unlimited"
 * is the veth as it is, limited by the 2 cores). For each rate, the delta and the patches
 * alternate, both hosts rolled back to step 1 between runs. Wall is from starting both ranks to
 * both exiting; "link MiB" is what host 1's eth0 received during the run; CPU is user + system of
 * both ranks. Host 1's live file is compared with the step-2 checkpoint after every run.
 *
 * `--before DIR` also runs another build of hotweights (DIR: its checkout, built; e.g. main's) in
 * the same rounds, alternating which build goes first, so a change is measured against what it
 * changed under the same load. Each build's ranks run from its own checkout (as `npx hotweights`
 * would), so each discovers its own plugins.
 *
 * Usage (as root: namespaces and tc; iproute2 from scripts/install-system-deps.sh):
 *   npm run build && bash scripts/setup-python.sh
 *   .venv/bin/python bench/patches/generate.py --out /tmp/hw-patches --steps 2 --lrs 1e-6,1e-4
 *   npx tsx --conditions=@hotweights/source bench/patches/link.ts --data /tmp/hw-patches
 *     [--lrs 1e-6,1e-4] [--rates 100mbit,1gbit,10gbit,unlimited] [--rounds 3] [--bucket-mb 16]
 *     [--before /work/main] [--out bench/results/patches-link.json]
 * Prints a table and writes the JSON to --out.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { LAB_PORT, NetnsLab } from '../../packages/transport-ucx/test/netns.js';
import { arg, CLI, root } from './cli.js';
import { makeStepPlans, publishSteps } from './plans.js';

const data = arg('data', '/tmp/hw-patches');
const lrs = arg('lrs', '1e-6,1e-4').split(',');
const rates = arg('rates', '100mbit,1gbit,10gbit,unlimited').split(',');
const rounds = Number(arg('rounds', '3'));
const bucketMb = Number(arg('bucket-mb', '16'));
const beforeRoot = arg('before', '');
const out = arg('out', 'bench/results/patches-link.json');
const HOSTS = 2;

/** A build of hotweights: its checkout and its CLI. */
interface Build {
  readonly name: 'after' | 'before';
  readonly root: string;
  readonly cli: string;
}
const builds: Build[] = [{ name: 'after', root, cli: CLI }];
if (beforeRoot) {
  const cli = join(beforeRoot, 'packages/cli/dist/bin.js');
  if (!existsSync(cli)) throw new Error(`--before ${beforeRoot}: no ${cli} (build that checkout first)`);
  builds.push({ name: 'before', root: beforeRoot, cli });
}

for (const r of rates)
  if (r !== 'unlimited' && !/^\d+(mbit|gbit)$/.test(r))
    throw new Error(`--rates ${r}: expected e.g. 100mbit, 1gbit, 10gbit or unlimited`);

const work = mkdtempSync(join(tmpdir(), 'hw-bench-patches-link-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-bench-patches-link-'));
let lab: NetnsLab | undefined;
process.on('exit', () => {
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

/** Caps what host 0 sends (tbf, with 10 ms of the rate as its bucket), or lifts the cap. */
function setRate(l: NetnsLab, rate: string): void {
  if (rate === 'unlimited') {
    if (l.exec(0, 'tc', ['qdisc', 'show', 'dev', 'eth0']).includes('tbf'))
      l.exec(0, 'tc', ['qdisc', 'del', 'dev', 'eth0', 'root']);
    return;
  }
  const [, n, unit] = /^(\d+)(mbit|gbit)$/.exec(rate) as RegExpExecArray;
  const bytesPerS = (Number(n) * (unit === 'gbit' ? 1e9 : 1e6)) / 8;
  const burst = Math.max(1 << 20, Math.round(bytesPerS / 100));
  l.exec(0, 'tc', [
    'qdisc',
    'replace',
    'dev',
    'eth0',
    'root',
    'tbf',
    'rate',
    rate,
    'burst',
    `${burst}`,
    'latency',
    '50ms',
  ]);
}

const rxBytes = (l: NetnsLab, i: number) =>
  Number(l.exec(i, 'cat', ['/sys/class/net/eth0/statistics/rx_bytes']));

/** Both ranks of `plan`, one per host; wall seconds until both exit, CPU seconds of both. */
async function replicate(
  l: NetnsLab,
  plan: string,
  build: Build = builds[0] as Build,
): Promise<{ seconds: number; cpu: number }> {
  const t0 = performance.now();
  const runs = l.hosts.map((h) => {
    const cmd = [build.cli, 'replicate', '--plan', plan, '--commit', '--target', h.target, '--no-metrics'];
    const timed = ['/usr/bin/time', '-f', 'cpu %U %S', process.execPath, ...cmd];
    return l
      .spawn(h.index, '/usr/bin/env', ['-C', build.root, ...timed], {
        RANK: String(h.index),
        WORLD_SIZE: String(HOSTS),
        MASTER_ADDR: l.host(0).address,
        MASTER_PORT: String(LAB_PORT),
        HOTWEIGHTS_SOURCE_ROOTS: `${data}:${work}`,
        HOTWEIGHTS_STAGING_DIR: join(staging, `host${h.index}`),
      })
      .done.then((r) => {
        if (r.code !== 0)
          throw new Error(`rank ${h.index} of ${plan} failed (${r.code ?? r.signal}): ${r.stderr}`);
        const m = /cpu ([\d.]+) ([\d.]+)\s*$/.exec(r.stderr);
        return m ? Number(m[1]) + Number(m[2]) : Number.NaN;
      });
  });
  const cpu = await Promise.all(runs);
  return { seconds: (performance.now() - t0) / 1000, cpu: cpu.reduce((a, b) => a + b, 0) };
}

async function rollback(l: NetnsLab): Promise<void> {
  for (const h of l.hosts) {
    const r = await l.spawn(h.index, process.execPath, [CLI, 'rollback', '--target', h.target]).done;
    if (r.code !== 0) throw new Error(`rollback on host ${h.index} failed: ${r.stderr}`);
  }
}

interface Run {
  seconds: number[];
  cpu: number[];
  link_bytes: number[];
}
interface Row {
  lr: string;
  rate: string;
  delta_bytes: number;
  patch_bytes: number;
  delta: Run;
  patches: Run;
  /** The same runs of the --before build, when given. */
  before?: { delta: Run; patches: Run };
  loadavg_1m: number[];
  /** Host 1's live file was the step-2 checkpoint after every run. */
  landed_exact: boolean;
}
const rows: Row[] = [];
const uptimeAtStart = execFileSync('uptime', { encoding: 'utf8' }).trim();

try {
  lab = NetnsLab.create(HOSTS);
  for (const h of lab.hosts) mkdirSync(join(staging, `host${h.index}`));
  for (const lr of lrs) {
    const steps = await publishSteps(data, lr, work);
    const plans = await makeStepPlans(steps, lr, work, HOSTS, bucketMb << 20);
    const expected = readFileSync(join(steps.dir(2), 'model.safetensors'));
    const landedExact = () =>
      Buffer.compare(
        readFileSync(join((lab as NetnsLab).host(1).target, 'rank-1/current/model.safetensors')),
        expected,
      ) === 0;
    setRate(lab, 'unlimited');
    for (const h of lab.hosts) rmSync(h.target, { recursive: true, force: true });
    await replicate(lab, plans.base);
    // One uncounted update per build first: its modules and the plans come from disk once.
    for (const build of builds) {
      await replicate(lab, plans.delta, build);
      await rollback(lab);
    }
    for (const rate of rates) {
      setRate(lab, rate);
      const row: Row = {
        lr,
        rate,
        delta_bytes: plans.deltaBytes,
        patch_bytes: plans.patchBytes,
        delta: { seconds: [], cpu: [], link_bytes: [] },
        patches: { seconds: [], cpu: [], link_bytes: [] },
        ...(beforeRoot
          ? {
              before: {
                delta: { seconds: [], cpu: [], link_bytes: [] },
                patches: { seconds: [], cpu: [], link_bytes: [] },
              },
            }
          : {}),
        loadavg_1m: [],
        landed_exact: true,
      };
      const runsOf = (b: Build) => {
        const into = b.name === 'after' ? row : (row.before as NonNullable<Row['before']>);
        return [
          [b, plans.delta, into.delta],
          [b, plans.patched, into.patches],
        ] as const;
      };
      for (let r = 0; r < rounds; r++) {
        // Builds take turns going first; within a build the delta and the patches alternate.
        const order = r % 2 === 0 ? builds : [...builds].reverse();
        for (const [build, plan, into] of order.flatMap(runsOf)) {
          // Inputs in the page cache and nothing dirty: the same start for both.
          readFileSync(join(steps.dir(1), 'model.safetensors'));
          readFileSync(join(steps.dir(2), 'model.safetensors'));
          execFileSync('sync');
          row.loadavg_1m.push(loadavg()[0] as number);
          const rx = rxBytes(lab, 1);
          const res = await replicate(lab, plan, build);
          into.link_bytes.push(rxBytes(lab, 1) - rx);
          into.seconds.push(res.seconds);
          into.cpu.push(res.cpu);
          row.landed_exact &&= landedExact();
          await rollback(lab);
        }
      }
      rows.push(row);
      console.error(JSON.stringify(row));
    }
    setRate(lab, 'unlimited');
  }
} finally {
  await lab?.destroy();
}

const MiB = 2 ** 20;
/** Medians of one build's delta and patches runs, and the ratio (also paired round by round). */
function figures(delta: Run, patches: Run) {
  const d = median(delta.seconds);
  const p = median(patches.seconds);
  return {
    'delta s': +d.toFixed(2),
    'patches s': +p.toFixed(2),
    'patches / delta': +(p / d).toFixed(2),
    paired: +median(patches.seconds.map((x, i) => x / (delta.seconds[i] as number))).toFixed(2),
    'CPU-s delta / patches': `${median(delta.cpu).toFixed(2)} / ${median(patches.cpu).toFixed(2)}`,
  };
}
const table = rows.map((r) => {
  const before = r.before ? figures(r.before.delta, r.before.patches) : undefined;
  return {
    lr: r.lr,
    link: r.rate,
    'delta / patches MiB planned': `${(r.delta_bytes / MiB).toFixed(1)} / ${(r.patch_bytes / MiB).toFixed(2)}`,
    'link MiB delta / patches': `${(median(r.delta.link_bytes) / MiB).toFixed(1)} / ${(median(r.patches.link_bytes) / MiB).toFixed(2)}`,
    ...figures(r.delta, r.patches),
    ...(before ? Object.fromEntries(Object.entries(before).map(([k, v]) => [`before: ${k}`, v])) : {}),
    load: `${Math.min(...r.loadavg_1m).toFixed(1)}-${Math.max(...r.loadavg_1m).toFixed(1)}`,
    exact: r.landed_exact,
  };
});
console.log(
  `2 hosts (network namespaces), UCX over TCP; rank 0 reads the source, rank 1 across the link${beforeRoot ? `; "before": ${beforeRoot}` : ''}`,
);
console.table(table);
const outPath = resolve(root, out);
mkdirSync(dirname(outPath), { recursive: true });
writeFileSync(
  outPath,
  `${JSON.stringify(
    {
      date: new Date().toISOString(),
      cpus: cpus().length,
      uptime: { start: uptimeAtStart, end: execFileSync('uptime', { encoding: 'utf8' }).trim() },
      bucket_mb: bucketMb,
      rounds,
      ...(beforeRoot ? { before: beforeRoot } : {}),
      rows,
      table,
    },
    null,
    2,
  )}\n`,
);
console.error(`wrote ${outPath}`);
