/**
 * End to end with real processes: `coord-serve`, `hotweights worker --adapter trainer` and a real
 * PyTorch training job (test/trainer/train.py, AdamW on CPU) that applies updates between steps.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { previewPolicy } from '@hotweights/adapter-trainer';
import { createPlan, publish, writeManifest, writePlan } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type CoordProcess, startCoordProcess } from '../../cli/test/coord-process.js';
import { CLI_SOURCE, REPO_ROOT, runCli, SOURCE_NODE_ARGS } from '../../cli/test/run-cli.js';

const PYTHON = join(REPO_ROOT, '.venv/bin/python');
const HERE = join(import.meta.dirname, 'trainer');
const work = mkdtempSync(join(tmpdir(), 'hw-trainer-e2e-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-trainer-e2e-'));
const exchange = join(staging, 'exchange');
const ckpts = join(work, 'ckpt');
const children: ChildProcess[] = [];
let coord: CoordProcess;

interface Proc {
  readonly child: ChildProcess;
  output(): string;
  waitFor(pattern: RegExp, ms?: number): Promise<RegExpExecArray>;
}

function start(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  const child = spawn(cmd, args, {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  children.push(child);
  let out = '';
  for (const s of [child.stdout, child.stderr]) s?.setEncoding('utf8').on('data', (d: string) => (out += d));
  return {
    child,
    output: () => out,
    waitFor: async (pattern, ms = 120_000) => {
      const deadline = Date.now() + ms;
      for (;;) {
        const m = pattern.exec(out);
        if (m) return m;
        if (Date.now() > deadline || child.exitCode !== null) {
          throw new Error(`never saw ${pattern} from ${args.join(' ')}; output:\n${out}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}

async function planTo(prev: string, next: string): Promise<string> {
  const m = (v: string) => publish({ checkpoint: join(ckpts, v), version: v, hash: 'xxh3-64' });
  const [mp, mn] = await Promise.all([m(prev), m(next)]);
  const manifest = join(work, `${next}.manifest.json`);
  await writeManifest(mn, manifest);
  const plan = join(work, `${prev}-${next}.plan.json`);
  const common = { bucketBytes: 512, worldSize: 1, nextManifestPath: manifest };
  await writePlan(createPlan({ prev: mp, next: mn, checkpointRoot: join(ckpts, next), ...common }), plan);
  return plan;
}

const cli = (args: string[]) =>
  runCli(args, { env: { HOTWEIGHTS_COORD: coord.endpoint }, timeoutMs: 120_000 });

function startTrainer(updates: number): Proc {
  return start(
    PYTHON,
    [join(HERE, 'train.py'), '--exchange', exchange, '--checkpoints', ckpts, '--updates', String(updates)],
    {
      PYTHONPATH: [HERE, join(import.meta.dirname, '../python/src')].join(':'),
    },
  );
}

function startWorker(env: NodeJS.ProcessEnv): Proc {
  const args = [...SOURCE_NODE_ARGS, CLI_SOURCE, 'worker', '--endpoint', coord.endpoint];
  args.push('--pub-endpoint', coord.pubEndpoint, '--metrics-port', '0', '--transport', 'local');
  args.push('--adapter', 'trainer', '--adapter-option', `dir=${exchange}`);
  return start(process.execPath, args, {
    RANK: '0',
    WORLD_SIZE: '1',
    HOTWEIGHTS_STAGING_DIR: staging,
    HOTWEIGHTS_SOURCE_ROOTS: ckpts,
    HOTWEIGHTS_STATE_DIR: join(work, 'state'),
    ...env,
  });
}

beforeAll(async () => {
  execFileSync(PYTHON, [join(HERE, 'make_checkpoints.py'), ckpts], {
    env: { ...process.env, PYTHONPATH: HERE },
  });
  coord = await startCoordProcess({ HOTWEIGHTS_LEASE_S: '5', HOTWEIGHTS_HEARTBEAT_S: '0.5' });
});

afterAll(async () => {
  await Promise.all(
    children
      .filter((c) => c.exitCode === null && c.signalCode === null)
      .map((c) => new Promise((r) => c.once('exit', r).kill('SIGKILL'))),
  );
  await coord?.stop('SIGKILL');
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

describe('hotweights worker --adapter trainer beside a PyTorch training job', { timeout: 300_000 }, () => {
  it('swaps v2 in place mid-run with the attenuate policy; an update that does not fit aborts', async () => {
    const trainer = startTrainer(1);
    await trainer.waitFor(/^attached$/m);
    const worker = startWorker({ HOTWEIGHTS_OPT_POLICY: 'attenuate', HOTWEIGHTS_OPT_ATTENUATION: '0.5' });
    await worker.waitFor(/registered as/);

    await cli(['coord-submit-plan', '--plan', await planTo('v1', 'v2')]);
    const v2 = await cli(['begin', '--version', 'v2', '--wait']);
    expect(v2.stderr).toBe('');
    expect(v2.stdout).toContain('update v2: committed');
    await worker.waitFor(/update v2: committed, live v2/);

    const report = JSON.parse((await trainer.waitFor(/^(\{"version".*)$/m))[1] as string);
    expect(report.version).toBe('v2');
    expect(report.tensors).toEqual(['0.weight', '2.bias']);
    expect(Object.values(report.equal_published)).toEqual([true, true]);
    expect(Object.values(report.same_storage).every(Boolean)).toBe(true);
    expect(report.same_optimizer_params).toBe(true);
    // What the training process measured is what `opt-check` (the same table) promises.
    const preview = previewPolicy({ policy: 'attenuate', attenuation: 0.5, updated: 2, unchanged: 2 });
    const promised = Object.fromEntries(preview.state.map((s) => [s.key, s.updated]));
    for (const ratios of Object.values(report.state_ratio) as Record<string, number>[]) {
      expect(Object.keys(ratios).sort()).toEqual(['exp_avg', 'exp_avg_sq', 'step']);
      for (const [key, r] of Object.entries(ratios)) expect(r, key).toBeCloseTo(promised[key] as number, 5);
    }
    expect(report.unchanged_state_identical).toEqual({ '0.bias': true, '2.weight': true });
    const done = JSON.parse((await trainer.waitFor(/^(\{"done".*)$/m))[1] as string);
    expect(done).toMatchObject({ losses_finite: true, live_version: 'v2' });
    expect(done.steps).toBeGreaterThan(report.step);

    // v3 changes a tensor's shape: the worker refuses it before voting, the update aborts.
    const trainer2 = startTrainer(1);
    await trainer2.waitFor(/^attached$/m);
    await cli(['coord-submit-plan', '--plan', await planTo('v2', 'v3')]);
    const v3 = await cli(['begin', '--version', 'v3', '--wait']);
    expect(`${v3.stdout}${v3.stderr}`).toMatch(/aborted/);
    await worker.waitFor(/2\.bias: staged shape \[5\], live \[4\]/);
    expect(readdirSync(exchange).sort()).toEqual(['layout.json', 'live.json', 'trainer.json']);
    expect(trainer2.output()).not.toContain('"version"');
  });
});
