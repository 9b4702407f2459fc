/**
 * Patch items against tensor-level deltas on RL-like steps (issue #16). For each learning rate of
 * the generated steps (generate.py), step 1 is live and step 2 is the update: bytes planned by a
 * tensor-level delta and by `--patches`, the time to publish step 2 and to plan each way, and the
 * end-to-end `hotweights replicate --commit --target` (process start to exit) to 1 and 2 local
 * ranks for each, alternating, with a rollback to step 1 between rounds. Beside them, the
 * fraction of bf16 elements that changed (generate.py's changed.json). Prints a table and writes
 * bench/results/patches.json.
 *
 * Usage: npm run build && bash scripts/setup-python.sh
 *        .venv/bin/python bench/patches/generate.py --out /tmp/hw-patches --steps 2
 *        npx tsx --conditions=@hotweights/source bench/patches/run.ts --data /tmp/hw-patches [--rounds 3]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { timeCommand } from '../timed-process.js';
import { arg, CLI, root } from './cli.js';
import { makeStepPlans, publishSteps } from './plans.js';

const data = arg('data', '/tmp/hw-patches');
const rounds = Number(arg('rounds', '3'));
const rankCounts = arg('ranks', '1,2').split(',').map(Number);
const bucketMb = Number(arg('bucket-mb', '16'));
const work = mkdtempSync(join(tmpdir(), 'hw-bench-patches-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-bench-patches-'));
const env = {
  ...process.env,
  HOTWEIGHTS_STAGING_DIR: staging,
  HOTWEIGHTS_STATE_DIR: join(work, 'state'),
  // Steps are published in this process and patch files written under work: both may be read.
  HOTWEIGHTS_SOURCE_ROOTS: `${data}:${work}`,
};

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

const cli = (args: string[]) => timeCommand([process.execPath, CLI, ...args], { cwd: root, env });

/** Page cache warm for the inputs and no dirty pages pending: the same start for each run. */
function settle(dir: string): void {
  readFileSync(join(dir, 'model.safetensors'));
  execFileSync('sync');
}

const changed = JSON.parse(readFileSync(join(data, 'changed.json'), 'utf8')) as {
  rates: Record<string, { changed_fraction: number[] }>;
};

interface Row {
  lr: string;
  changed_pct: number;
  checkpoint_bytes: number;
  delta_bytes: number;
  patch_bytes: number;
  patch_items: number;
  publish_s: number;
  plan_delta_s: number;
  plan_patches_s: number;
  e2e: Record<
    string,
    { delta_s: number[]; patches_s: number[]; delta_cpu_s: number[]; patches_cpu_s: number[] }
  >;
  loadavg_1m: number[];
}
const rows: Row[] = [];

for (const lr of Object.keys(changed.rates)) {
  const steps = await publishSteps(data, lr, work);
  const { dir, m2 } = steps;
  const row: Row = {
    lr,
    changed_pct: 100 * (changed.rates[lr]?.changed_fraction[1] ?? Number.NaN),
    checkpoint_bytes: m2.total_bytes,
    delta_bytes: 0,
    patch_bytes: 0,
    patch_items: 0,
    publish_s: steps.publishS,
    plan_delta_s: 0,
    plan_patches_s: 0,
    e2e: {},
    loadavg_1m: [],
  };
  for (const ranks of rankCounts) {
    const plans = await makeStepPlans(steps, lr, work, ranks, bucketMb << 20);
    const { base, delta, patched } = plans;
    row.plan_delta_s = plans.planDeltaS;
    row.plan_patches_s = plans.planPatchesS;
    row.delta_bytes = plans.deltaBytes;
    row.patch_bytes = plans.patchBytes;
    row.patch_items = plans.patchItems;

    const target = join(work, `target-${lr}-${ranks}`);
    await cli([
      'replicate',
      '--plan',
      base,
      '--commit',
      '--target',
      target,
      '--world-size',
      String(ranks),
      '--no-metrics',
    ]);
    const e2e = {
      delta_s: [] as number[],
      patches_s: [] as number[],
      delta_cpu_s: [] as number[],
      patches_cpu_s: [] as number[],
    };
    for (let r = 0; r < rounds; r++) {
      for (const [plan, into, cpu] of [
        [delta, e2e.delta_s, e2e.delta_cpu_s],
        [patched, e2e.patches_s, e2e.patches_cpu_s],
      ] as const) {
        settle(dir(2));
        row.loadavg_1m.push(loadavg()[0] as number);
        const res = await cli([
          'replicate',
          '--plan',
          plan,
          '--commit',
          '--target',
          target,
          '--world-size',
          String(ranks),
          '--no-metrics',
        ]);
        into.push(res.seconds);
        cpu.push(res.cpu);
        await cli(['rollback', '--target', target]);
      }
    }
    row.e2e[String(ranks)] = e2e;
    rmSync(target, { recursive: true, force: true });
  }
  rows.push(row);
  console.error(JSON.stringify(row));
}

const MiB = 1 << 20;
const table = rows.map((r) => {
  const out: Record<string, string> = {
    lr: r.lr,
    'changed elements': `${r.changed_pct.toFixed(2)}%`,
    'delta MiB': (r.delta_bytes / MiB).toFixed(1),
    'patches MiB': (r.patch_bytes / MiB).toFixed(2),
    'patches/delta': `${((100 * r.patch_bytes) / r.delta_bytes).toFixed(1)}%`,
    'publish s': r.publish_s.toFixed(2),
    'plan delta s': r.plan_delta_s.toFixed(2),
    'plan patches s': r.plan_patches_s.toFixed(2),
    load: `${Math.min(...r.loadavg_1m).toFixed(0)}-${Math.max(...r.loadavg_1m).toFixed(0)}`,
  };
  for (const [ranks, e] of Object.entries(r.e2e)) {
    const dS = median(e.delta_s);
    const pS = median(e.patches_s);
    out[`${ranks}r delta s`] = dS.toFixed(2);
    out[`${ranks}r patches s`] = pS.toFixed(2);
    out[`${ranks}r ratio`] = (pS / dS).toFixed(2);
    out[`${ranks}r CPU-s delta/patches`] =
      `${median(e.delta_cpu_s).toFixed(2)} / ${median(e.patches_cpu_s).toFixed(2)}`;
  }
  return out;
});
console.table(table);
mkdirSync(join(root, 'bench/results'), { recursive: true });
writeFileSync(
  join(root, 'bench/results/patches.json'),
  `${JSON.stringify({ date: new Date().toISOString(), cpus: cpus().length, loadavg_1m: loadavg()[0], bucket_mb: bucketMb, rounds, rows, table }, null, 2)}\n`,
);
rmSync(work, { recursive: true, force: true });
rmSync(staging, { recursive: true, force: true });
