/**
 * The trainer adapter through the real update pipeline (host staging in /dev/shm, local
 * transport) against real Python processes: the deadline, a vanished training process, options.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type TrainerAdapter, trainerAdapterProvider } from '@hotweights/adapter-trainer';
import { loadConfig, type Manifest, type Plan } from '@hotweights/core';
import { createPlan, publish } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { updateOneRank } from '../../adapter-vllm/test/pipeline.js';

const REPO = join(import.meta.dirname, '../../..');
const PYTHON = join(REPO, '.venv/bin/python');
const HERE = join(import.meta.dirname, 'trainer');
const work = mkdtempSync(join(tmpdir(), 'hw-trainer-adapter-'));
const shm = mkdtempSync(join('/dev/shm', 'hw-trainer-adapter-'));
const config = loadConfig({});
let manifest: Manifest;
let plan: Plan;

beforeAll(async () => {
  execFileSync(PYTHON, [join(HERE, 'make_checkpoints.py'), work], {
    env: { ...process.env, PYTHONPATH: HERE },
  });
  const m1 = await publish({ checkpoint: join(work, 'v1'), version: 'v1' });
  manifest = await publish({ checkpoint: join(work, 'v2'), version: 'v2' });
  plan = createPlan({
    prev: m1,
    next: manifest,
    checkpointRoot: join(work, 'v2'),
    nextManifestPath: null,
    bucketBytes: 512,
  });
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(shm, { recursive: true, force: true });
});

/** A Python process running `code` with argv[1] = dir, once it printed "attached". */
async function pythonProcess(code: string, dir: string): Promise<{ child: ChildProcess; output(): string }> {
  const child = spawn(PYTHON, ['-c', code, dir], {
    env: { ...process.env, PYTHONPATH: `${HERE}:${join(import.meta.dirname, '../python/src')}` },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  let out = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('attached')) resolve();
    });
    child.once('exit', (c) => reject(new Error(`the trainer exited (${c})`)));
  });
  return { child, output: () => out };
}

/** A training process that attaches (layout and pid) but never reaches a step boundary. */
async function idleTrainer(dir: string): Promise<ChildProcess> {
  const code = `import sys; from model import make_model; from hotweights_trainer import TrainerSwap
TrainerSwap(sys.argv[1], make_model()); print("attached", flush=True); sys.stdin.read()`;
  return (await pythonProcess(code, dir)).child;
}

// The update as `hotweights worker` runs it (stage, verify, prepare, vote, commit), shared with adapter-vllm's tests.
const update = (adapter: TrainerAdapter) => updateOneRank(adapter, plan, manifest, shm);

const open = async (settings: Record<string, string>) =>
  (await trainerAdapterProvider.create({ rank: 0, worldSize: 1, config, settings })) as TrainerAdapter;

describe('TrainerAdapter', { timeout: 120_000 }, () => {
  it('cancels a commit the training process does not take before the deadline; nothing is applied', async () => {
    const dir = join(shm, 'slow');
    const trainer = await idleTrainer(dir);
    try {
      const probe = await trainerAdapterProvider.probe({ rank: 0, worldSize: 1, config, settings: { dir } });
      expect(probe).toEqual({ available: true, detail: `training process ${trainer.pid} attached` });
      const adapter = await open({ dir, 'commit-timeout-s': '0.5' });
      await expect(update(adapter)).rejects.toThrow(
        'v2 was not applied: the training process did not reach a step boundary within 0.5 s; the commit is cancelled, nothing changed',
      );
      expect(readdirSync(dir).sort()).toEqual(['layout.json', 'trainer.json']);
      expect(await adapter.currentVersion()).toBeNull();
    } finally {
      trainer.kill('SIGKILL');
    }
  });

  it("fails the commit with the training process's reason when it refuses; nothing is applied", async () => {
    const dir = join(shm, 'refuses');
    // The model changes shape after it reported its layout, so only the training process sees it.
    const code = `import sys, time, torch; from model import make_model; from hotweights_trainer import TrainerSwap
m = make_model(); swap = TrainerSwap(sys.argv[1], m); m[2].bias = torch.nn.Parameter(torch.zeros(5))
before = {n: t.clone() for n, t in m.state_dict().items()}
print("attached", flush=True)
while swap.last_refusal is None:
    swap.maybe_apply(m); time.sleep(0.02)
print("untouched" if all(torch.equal(t, before[n]) for n, t in m.state_dict().items()) else "CHANGED", flush=True)`;
    const trainer = await pythonProcess(code, dir);
    try {
      await expect(update(await open({ dir }))).rejects.toThrow(
        'the training process refused v2 (E_TRAINER_MISMATCH): version v2 does not fit the live model, nothing applied: 2.bias: staged shape [4], live [5]',
      );
      await new Promise((r) => trainer.child.once('close', r));
      expect(trainer.output()).toContain('untouched');
      expect(readdirSync(dir).sort()).toEqual(['layout.json', 'trainer.json']);
    } finally {
      trainer.child.kill('SIGKILL');
    }
  });

  it('fails a commit at once when the training process is gone', async () => {
    const dir = join(shm, 'gone');
    const trainer = await idleTrainer(dir);
    await new Promise((r) => trainer.once('exit', r).kill('SIGKILL'));
    await expect(update(await open({ dir }))).rejects.toThrow(
      `v2 was not applied: the training process (pid ${trainer.pid}) is gone; the commit is cancelled`,
    );
    expect(existsSync(join(dir, 'commit.json'))).toBe(false);
  });

  it('does not judge a training process in another pid namespace (a sidecar container) by its pid', async () => {
    const dir = join(shm, 'sidecar');
    const trainer = await idleTrainer(dir);
    await new Promise((r) => trainer.once('exit', r).kill('SIGKILL'));
    const info = JSON.parse(readFileSync(join(dir, 'trainer.json'), 'utf8'));
    writeFileSync(join(dir, 'trainer.json'), JSON.stringify({ ...info, pid_ns: 'pid:[1]' }));
    await expect(update(await open({ dir, 'commit-timeout-s': '0.5' }))).rejects.toThrow(
      'did not reach a step boundary within 0.5 s',
    );
  });

  it('names the bad option', async () => {
    await expect(open({})).rejects.toThrow('the trainer adapter needs the exchange directory');
    await expect(open({ dir: shm, 'opt-policy': 'shrink' })).rejects.toThrow(
      'trainer adapter option opt-policy=shrink: expected preserve, reset or attenuate',
    );
    await expect(open({ dir: shm, 'opt-attenuation': '2' })).rejects.toThrow(
      'trainer adapter option opt-attenuation=2: expected a number in 0..1',
    );
    await expect(open({ dir: shm })).resolves.toBeDefined();
    await expect((await open({ dir: shm })).rollback()).rejects.toThrow('keeps no previous version');
  });
});
