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
 * Beside them, (c) the command users run: `hotweights plan --prev --next --output` in a fresh
 * process, end to end (start-up, both loads, plan, default verification, write, summary), timed
 * from outside with /usr/bin/time. It runs the built CLI (packages/cli/bin/hotweights.js, built
 * first with `tsc -b packages/cli`); if that build fails, the CLI from sources under tsx (slower
 * start-up, said in the output).
 *
 * And (d) that command's floor, in the same rounds: a fresh plain `node` process that reads both
 * files and exits (start-up plus the read, nothing else), timed the same way. The CPU model, its
 * hash-relevant flags and the load average go into the JSON.
 *
 * With --compare-cli <bin/hotweights.js of another checkout> (built), that CLI runs the same
 * command in the same rounds, alternating with this one (before/after on a shared machine):
 * base_cli_* columns and cli_vs_base (median over rounds of this / that).
 *
 * Usage: node --conditions=@hotweights/source --import tsx bench/planner/plan-bench.ts
 *          [--repeat N] [--with-json] [--no-cli] [--compare-cli PATH] [sizes...]
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { serializeManifest, serializeManifestBinary } from '@hotweights/manifest';
import { cpuDescription, timeProcess } from '../timed-process.js';
import { syntheticManifest } from './synthetic-manifest.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const repo = join(here, '..', '..');
const args = process.argv.slice(2);
const flag = (name: string) => args.includes(name);
const repeatAt = args.indexOf('--repeat');
const REPEAT = repeatAt >= 0 ? Number(args[repeatAt + 1]) : 3;
const compareAt = args.indexOf('--compare-cli');
const BASE_CLI = compareAt >= 0 ? (args[compareAt + 1] as string) : null;
const WITH_JSON = flag('--with-json');
const WITH_CLI = !flag('--no-cli');
const sizes = args
  .filter((a, i) => !a.startsWith('--') && i !== repeatAt + 1 && (compareAt < 0 || i !== compareAt + 1))
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

/** How `hotweights` is started: the built CLI when it builds, else its sources under tsx. */
function cliCommand(): { argv: string[]; kind: string } {
  const built = join(repo, 'packages', 'cli', 'bin', 'hotweights.js');
  const tsc = spawnSync('npx', ['tsc', '-b', join(repo, 'packages', 'cli')], { cwd: repo, encoding: 'utf8' });
  if (tsc.status === 0 && existsSync(join(repo, 'packages', 'cli', 'dist', 'bin.js')))
    return { argv: [built], kind: 'built (packages/cli/bin/hotweights.js)' };
  console.error(`tsc -b packages/cli failed; timing the CLI from sources:\n${tsc.stdout}${tsc.stderr}`);
  return { argv: [...nodeArgs, join(repo, 'packages', 'cli', 'src', 'bin.ts')], kind: 'sources under tsx' };
}

/** One `hotweights plan` in a fresh process: wall and CPU seconds and peak RSS from /usr/bin/time. */
const runCli = (cli: string[], args: string[]): RunResult =>
  timeProcess([process.execPath, ...cli, ...args], { cwd: repo, what: 'hotweights plan' });

/** The command's floor: a fresh plain `node` that reads both files and exits. */
const READ_BOTH =
  "const {readFileSync}=require('node:fs');for(const p of process.argv.slice(1))readFileSync(p)";
const runFloorProcess = (paths: string[]): RunResult =>
  timeProcess([process.execPath, '-e', READ_BOTH, ...paths], { what: 'node reading both manifests' });

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] as number;
const dir = mkdtempSync(join(tmpdir(), 'hw-plan-bench-'));
const rows: Record<string, unknown>[] = [];
const load = [loadavg()[0] as number];
const cli = WITH_CLI ? cliCommand() : null;
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
    const command: RunResult[] = [];
    const base: RunResult[] = [];
    const floorProcess: RunResult[] = [];
    const planArgs = (out: string) => [
      'plan',
      '--prev',
      prevPath,
      '--next',
      nextPath,
      '--output',
      join(dir, out),
      '--bucket-mb',
      String(BUCKET / (1024 * 1024)),
      '--checkpoint',
      '/ckpt',
    ];
    for (let r = 0; r < REPEAT; r++) {
      if (cli) floorProcess.push(runFloorProcess([prevPath, nextPath]));
      if (cli && BASE_CLI) base.push(runCli([BASE_CLI], planArgs(`plan-${n}-base.json`)));
      if (cli) command.push(runCli(cli.argv, planArgs(`plan-${n}-cli.json`)));
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
      ...(cli
        ? {
            cli_total_ms: Math.round(pick(command, 'total_ms')),
            cli_cpu_ms: Math.round(pick(command, 'cpu_ms')),
            cli_peak_rss_mb: Math.round(Math.max(...command.map((x) => x.peak_rss)) / 1e6),
            // A fresh `node` reading both files: what the command cannot go below.
            node_read_ms: Math.round(pick(floorProcess, 'total_ms')),
            cli_vs_node_read:
              Math.round((pick(command, 'total_ms') / pick(floorProcess, 'total_ms')) * 100) / 100,
          }
        : {}),
      ...(cli && BASE_CLI
        ? {
            base_cli_total_ms: Math.round(pick(base, 'total_ms')),
            base_cli_cpu_ms: Math.round(pick(base, 'cpu_ms')),
            base_cli_peak_rss_mb: Math.round(Math.max(...base.map((x) => x.peak_rss)) / 1e6),
            // Per round (same minute, same load), then the median of the ratios.
            cli_vs_base:
              Math.round(
                median(command.map((x, r) => x.total_ms / ((base[r] as RunResult).total_ms || 1))) * 100,
              ) / 100,
          }
        : {}),
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
if (cli) console.log(`cli_*: \`hotweights plan\` end to end in a fresh process, ${cli.kind}`);
if (cli && BASE_CLI) console.log(`base_cli_*: the same command by ${BASE_CLI}, alternating round by round`);
console.log(
  `load average ${load.map((l) => l.toFixed(1)).join(' -> ')} (2-core machine shared with other sessions)`,
);
const cpu = cpuDescription();
console.log(`cpu: ${cpu.model}, ${cpu.cores} cores, flags ${cpu.flags.join(' ')}`);
const cols = Object.keys(rows[0] ?? {});
console.log(cols.join('\t'));
for (const r of rows) console.log(cols.map((c) => String(r[c])).join('\t'));
const results = join(repo, 'bench', 'results');
mkdirSync(results, { recursive: true });
writeFileSync(
  join(results, 'planner-plan.json'),
  `${JSON.stringify({ when: new Date().toISOString(), manifest_format: 'binary (manifest_version 3)', cli: cli?.kind ?? null, base_cli: BASE_CLI, bucket_bytes: BUCKET, repeat: REPEAT, changed_fraction: 0.1, cpu, load_average: load, rows }, null, 2)}\n`,
);
