/**
 * Plan time and peak memory for manifests of 10k, 100k and 1M entries, load included.
 *
 * For each size: a previous and a next manifest (every 10th tensor changed) are generated and
 * written in the default binary form; then fresh processes run (a) the machine's floor for loading
 * them, reading both files into memory and nothing else, and (b) the real thing, loadManifest x2 +
 * createPlan + writePlan. With --with-json the same plan is also made from the JSON forms of the
 * manifests (`publish --format json`). Each is repeated and the median wall time and the largest
 * peak RSS are reported, with the CPU time of each phase (less sensitive than wall time to other
 * processes on a shared machine) and the load average before and after.
 *
 * Usage: node --conditions=@hotweights/source --import tsx bench/planner/plan-bench.ts
 *          [--repeat N] [--with-json] [sizes...]
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serializeManifest, serializeManifestBinary } from '@hotweights/core';
import { syntheticManifest } from './synthetic-manifest.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = join(here, '..', '..');
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const repeatAt = args.indexOf('--repeat');
const REPEAT = repeatAt >= 0 ? Number(args[repeatAt + 1]) : 3;
const WITH_JSON = flag('--with-json');
const sizes = args
  .filter((a, i) => !a.startsWith('--') && i !== repeatAt + 1)
  .map(Number)
  .filter((n) => n > 0);
const SIZES = sizes.length ? sizes : [10_000, 100_000, 1_000_000];
const BUCKET = 64 * 1024 * 1024;
const nodeArgs = ['--conditions=@hotweights/source', '--import', 'tsx'];

interface RunResult {
  total_ms: number;
  peak_rss: number;
  [k: string]: number;
}

function run(script: string, args: string[]): RunResult {
  const out = execFileSync(process.execPath, [...nodeArgs, join(here, script), ...args], {
    cwd: repo,
    encoding: 'utf8',
    maxBuffer: 1 << 20,
  });
  return JSON.parse(out.trim().split('\n').pop() as string) as RunResult;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const dir = mkdtempSync(join(tmpdir(), 'hw-plan-bench-'));
const rows: Record<string, unknown>[] = [];
const load = [loadavg()[0] as number];
try {
  for (const n of SIZES) {
    const prevPath = join(dir, `prev-${n}.manifest`);
    const nextPath = join(dir, `next-${n}.manifest`);
    const prevM = syntheticManifest(n, 'v1');
    const nextM = syntheticManifest(n, 'v2', { changedEvery: 10 });
    writeFileSync(prevPath, serializeManifestBinary(prevM));
    writeFileSync(nextPath, serializeManifestBinary(nextM));
    const prevJson = join(dir, `prev-${n}.json`);
    const nextJson = join(dir, `next-${n}.json`);
    if (WITH_JSON) {
      writeFileSync(prevJson, serializeManifest(prevM));
      writeFileSync(nextJson, serializeManifest(nextM));
    }
    const floor: RunResult[] = [];
    const ours: RunResult[] = [];
    const json: RunResult[] = [];
    for (let r = 0; r < REPEAT; r++) {
      floor.push(run('parse-floor.ts', [prevPath, nextPath]));
      ours.push(run('plan-run.ts', [prevPath, nextPath, join(dir, `plan-${n}.json`), String(BUCKET)]));
      if (WITH_JSON)
        json.push(run('plan-run.ts', [prevJson, nextJson, join(dir, `plan-${n}-j.json`), String(BUCKET)]));
    }
    const pick = (rs: RunResult[], k: string) => median(rs.map((x) => x[k] as number));
    const row = {
      entries: n,
      manifest_mb: Math.round((statSync(nextPath).size / 1e6) * 10) / 10,
      floor_read_ms: Math.round(pick(floor, 'total_ms')),
      load_ms: Math.round(pick(ours, 'load_ms')),
      plan_ms: Math.round(pick(ours, 'plan_ms')),
      write_ms: Math.round(pick(ours, 'write_ms')),
      total_ms: Math.round(pick(ours, 'total_ms')),
      cpu_ms: Math.round(pick(ours, 'cpu_ms')),
      load_cpu_ms: Math.round(pick(ours, 'load_cpu_ms')),
      plan_cpu_ms: Math.round(pick(ours, 'plan_cpu_ms')),
      items: ours[0]?.items,
      buckets: ours[0]?.buckets,
      peak_rss_mb: Math.round(Math.max(...ours.map((x) => x.peak_rss)) / 1e6),
      floor_peak_rss_mb: Math.round(Math.max(...floor.map((x) => x.peak_rss)) / 1e6),
      ...(WITH_JSON
        ? {
            json_manifest_mb: Math.round((statSync(nextJson).size / 1e6) * 10) / 10,
            json_total_ms: Math.round(pick(json, 'total_ms')),
            json_cpu_ms: Math.round(pick(json, 'cpu_ms')),
            json_peak_rss_mb: Math.round(Math.max(...json.map((x) => x.peak_rss)) / 1e6),
          }
        : {}),
    };
    rows.push(row);
    console.error(`done ${n}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

load.push(loadavg()[0] as number);
console.log(
  `load average ${load.map((l) => l.toFixed(1)).join(' -> ')} (2-core machine shared with other sessions)`,
);
const cols = Object.keys(rows[0] ?? {});
console.log(cols.join('\t'));
for (const r of rows) console.log(cols.map((c) => String(r[c])).join('\t'));
const results = join(repo, 'bench', 'results');
mkdirSync(results, { recursive: true });
writeFileSync(
  join(results, 'planner-plan.json'),
  `${JSON.stringify({ when: new Date().toISOString(), manifest_format: 'binary (manifest_version 3)', bucket_bytes: BUCKET, repeat: REPEAT, changed_fraction: 0.1, load_average: load, rows }, null, 2)}\n`,
);
