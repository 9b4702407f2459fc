/**
 * The command lines of the seed documents' quick starts and walkthroughs (the product documents
 * users already know), run as written through a `hotweights` on PATH, in order, in a fresh
 * directory: each either works or answers with one line naming what replaced it. Lines that need
 * a GPU (`--device cuda`) are left out. Two things differ from the page, on purpose: the
 * coordinator's port 5555 becomes a free one (tests run in parallel), and the toy checkpoints are
 * written here (the walkthrough's `dd bs=1m` is BSD syntax).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from './coord-process.js';
import { CLI_SOURCE, type CliResult, collect, SOURCE_NODE_ARGS } from './run-cli.js';

let work = '';
let endpoint = '';
const background: ChildProcess[] = [];

function userEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env))
    if (!/^(HOTWEIGHTS_|RANK$|WORLD_SIZE$|MASTER_|OMPI_|PMIX_|VITEST)/.test(k)) env[k] = v;
  return {
    ...env,
    PATH: `${join(work, 'bin')}:${process.env.PATH}`,
    // What this machine has published and committed stays in the test's own state directory.
    HOTWEIGHTS_STATE_DIR: join(work, 'state'),
    HOTWEIGHTS_SOURCE_ROOTS: work,
  };
}

/** Runs one line of a seed document with `sh`, as a user pastes it. */
function sh(line: string, cwd = work): Promise<CliResult> {
  const text = line.replaceAll('tcp://127.0.0.1:5555', endpoint);
  return collect(spawn('sh', ['-c', text], { cwd, env: userEnv() }), 120_000);
}

/** Starts a line ending in `&` and resolves once its output shows `ready`. */
async function shBackground(line: string, ready: string): Promise<ChildProcess> {
  const text = line.replace(/\s*&\s*$/, '').replaceAll('tcp://127.0.0.1:5555', endpoint);
  // Its own process group, so that stopping it stops the shell and hotweights alike.
  const child = spawn('sh', ['-c', text], { cwd: work, env: userEnv(), detached: true });
  background.push(child);
  let out = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    out += d;
  });
  const deadline = Date.now() + 60_000;
  while (!out.includes(ready)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`${line} did not start:\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

function expectWorks(r: CliResult, line: string): void {
  expect(r.stderr, line).not.toMatch(/unknown (command|option)/);
  expect(r.code, `${line}\n${r.stderr}`).toBe(0);
}

/** A replaced line exits 2 with one line naming its replacement. */
function expectReplaced(r: CliResult, line: string, replacement: string): void {
  expect(r.code, line).toBe(2);
  const lines = r.stderr.trim().split('\n');
  expect(lines, line).toHaveLength(1);
  expect(lines[0]).toMatch(/^hotweights: error \[HW_REPLACED\]: .* is replaced in this hotweights: /);
  expect(lines[0]).toContain(replacement);
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hw-seed-lines-'));
  endpoint = `tcp://127.0.0.1:${await freePort()}`;
  // `hotweights` on PATH, as an installed CLI would be (here: the workspace's sources).
  mkdirSync(join(work, 'bin'));
  const shim = join(work, 'bin', 'hotweights');
  writeFileSync(
    shim,
    `#!/bin/sh\nexec "${process.execPath}" ${SOURCE_NODE_ARGS.join(' ')} "${CLI_SOURCE}" "$@"\n`,
  );
  chmodSync(shim, 0o755);
});

function stopGroup(child: ChildProcess, signal: NodeJS.Signals): void {
  try {
    if (child.pid) process.kill(-child.pid, signal);
  } catch {
    // already gone
  }
}

afterAll(() => {
  for (const child of background) stopGroup(child, 'SIGKILL');
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('the seed documents, as written', { timeout: 240_000 }, () => {
  it('walkthrough 1 (without its GPU line): publish, plan, verify, metrics', async () => {
    mkdirSync(join(work, 'demo_ckpt_a'));
    mkdirSync(join(work, 'demo_ckpt_b'));
    writeFileSync(join(work, 'demo_ckpt_a', 'a.bin'), Buffer.alloc(2 << 20));
    writeFileSync(join(work, 'demo_ckpt_b', 'a.bin'), Buffer.alloc(2 << 20));
    writeFileSync(join(work, 'demo_ckpt_b', 'b.bin'), Buffer.alloc(1 << 20, 7));
    for (const line of [
      'hotweights publish --checkpoint demo_ckpt_a --version v0 --output m_prev.json',
      'hotweights publish --checkpoint demo_ckpt_b --version v1 --output m_next.json',
      'hotweights plan --prev m_prev.json --next m_next.json --bucket-mb 64 --output plan.json',
      'hotweights verify-plan --plan plan.json --require-consumers || true',
    ])
      expectWorks(await sh(line), line);
    const metrics = 'hotweights metrics --start --port 9097';
    expectReplaced(await sh(metrics), metrics, '`replicate` on :9097 (--metrics-port)');
  });

  it('walkthrough 3 and the deployment guide: a coordinator, a plan, begin, a worker', async () => {
    await shBackground(
      'hotweights coord-serve --endpoint tcp://127.0.0.1:5555 &',
      'coordinator listening on',
    );
    for (const line of [
      'hotweights verify-plan --plan plan.json --world-size 1 || true',
      'hotweights coord-submit-plan --endpoint tcp://127.0.0.1:5555 --plan plan.json',
      'hotweights begin --endpoint tcp://127.0.0.1:5555 --version v1',
    ])
      expectWorks(await sh(line), line);
    // The walkthrough's worker line without `--device cuda` (no GPU here). Its plan is a delta
    // from v0 and this new worker has nothing live: it refuses the update, saying what to do, and
    // the coordinator aborts it (committed nowhere).
    const worker = await shBackground(
      'HOTWEIGHTS_COORD=tcp://127.0.0.1:5555 RANK=0 WORLD_SIZE=1 hotweights worker --metrics-port 0 &',
      'update v1: aborted',
    );
    stopGroup(worker, 'SIGTERM');
    const status = await sh('hotweights coord-status --endpoint tcp://127.0.0.1:5555');
    expectWorks(status, 'coord-status');
    expect(status.stdout).toMatch(/v1.*aborted/);
    expect(status.stdout).toContain('make a full plan (no --prev) or deploy v0 first');
  });

  it('the main quick start: publish, status, plan, verify, replicate, and the coordinator lines', async () => {
    mkdirSync(join(work, 'example_ckpt'));
    writeFileSync(join(work, 'example_ckpt', 'w.bin'), Buffer.alloc(1 << 20, 3));
    for (const line of [
      'hotweights publish --checkpoint ./example_ckpt --version 2025-09-11',
      'hotweights status',
      'hotweights plan --next ./m_next.json --bucket-mb 64 --coord-endpoint tcp://127.0.0.1:5555 --output plan.json',
      'hotweights plan --next ./m_next.json --strict --output plan.json',
      'hotweights verify-plan --plan plan.json --require-consumers || true',
      'hotweights replicate --plan plan.json --verify --commit',
      'hotweights replicate --plan plan.json --verify --commit --device cpu',
    ])
      expectWorks(await sh(line), line);
    const report =
      'RANK=0 hotweights replicate --plan plan.json --verify --coord-endpoint tcp://127.0.0.1:5555 --manifest-next ./m_next.json';
    expectReplaced(await sh(report), report, 'hotweights worker --endpoint URL');
    const mpi = 'hotweights replicate --plan plan.json --verify --mpi';
    const r = await sh(mpi);
    // `--mpi` is `--transport mpi`: outside mpirun it says exactly why MPI cannot run, and how.
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('the mpi transport runs only in a job its launcher started');
    expect(r.stderr).toContain('run `mpirun -n N hotweights replicate …`');
  });

  it("the walkthroughs' CLI utilities: kv-check, opt-check and verify-plan", async () => {
    for (const line of [
      'hotweights kv-check --heads 32 --kv-heads 8 --order grouped',
      'hotweights opt-check --updated 100 --unchanged 100 --policy attenuate --attenuation 0.5',
      'hotweights verify-plan --plan plan.json --world-size 8 --require-consumers',
    ])
      expectWorks(await sh(line), line);
  });

  it("the deployment guide's GPU line says, on a machine without a GPU, why it cannot run", async () => {
    const line = 'HOTWEIGHTS_USE_GDS=1 hotweights replicate --plan plan.json --device cuda';
    const r = await sh(line);
    expect(r.code, line).toBe(1);
    expect(r.stderr).toContain('hotweights: note: HOTWEIGHTS_USE_GDS is not read by this hotweights:');
    expect(r.stderr).toContain('libcuda.so.1');
  });

  it('the tuning guide: bench-hierarchical and the prototype variables', async () => {
    const bench = 'hotweights bench-hierarchical --size-mb 256 --repeat 3';
    expectReplaced(await sh(bench), bench, 'bench/');
    const gds = 'HOTWEIGHTS_HIERARCHICAL=1 hotweights verify-plan --plan plan.json --world-size 1';
    const r = await sh(gds);
    expectWorks(r, gds);
    expect(r.stderr).toContain('hotweights: note: HOTWEIGHTS_HIERARCHICAL is not read by this hotweights:');
  });
});
