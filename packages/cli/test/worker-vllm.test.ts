/**
 * `hotweights worker --vllm-url …` as a user runs it beside a vLLM server: the real CLI worker and
 * coordinator processes against the stand-in vLLM server (a test double of vLLM's HTTP surface
 * whose TP workers run the real hotweights_vllm extension). Updates commit byte-exact, a fleet
 * rollback re-commits the previous version from what the workers kept, and the flags refuse
 * nonsense with one line.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createPlan, publish, writeManifest, writePlan } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PYTHON, type StandIn, startStandIn, updateCalls } from '../../adapter-vllm/test/stand-in.js';
import { vllmDefaults, withVllmAdapter } from '../src/vllm-flags.js';
import { type CoordProcess, startCoordProcess } from './coord-process.js';
import { CLI_SOURCE, REPO_ROOT, runCli, SOURCE_NODE_ARGS } from './run-cli.js';

const FAST = { HOTWEIGHTS_LEASE_S: '2', HOTWEIGHTS_HEARTBEAT_S: '0.25' };
const work = mkdtempSync(join(tmpdir(), 'hw-worker-vllm-'));
const staging = join('/dev/shm', `hw-worker-vllm-${process.pid}`);
type Digests = Record<string, string>;

let server: StandIn;
let coord: CoordProcess;
let worker: ChildProcess | undefined;
let workerOut = '';
let digests: { v1: Digests; v2: Digests };

beforeAll(async () => {
  mkdirSync(staging, { recursive: true });
  execFileSync(PYTHON, [join(REPO_ROOT, 'packages/adapter-vllm/test/stand-in/make_checkpoints.py'), work]);
  digests = JSON.parse(readFileSync(join(work, 'digests.json'), 'utf8'));
  const m1 = await publish({ checkpoint: join(work, 'v1'), version: 'v1', modelId: 'tiny/llama' });
  const m2 = await publish({ checkpoint: join(work, 'v2'), version: 'v2', modelId: 'tiny/llama' });
  await writeManifest(m1, join(work, 'm1.json'));
  await writeManifest(m2, join(work, 'm2.json'));
  const common = { bucketBytes: 8192, worldSize: 1 };
  await writePlan(
    createPlan({
      prev: null,
      next: m1,
      checkpointRoot: join(work, 'v1'),
      nextManifestPath: join(work, 'm1.json'),
      ...common,
    }),
    join(work, 'p1.json'),
  );
  await writePlan(
    createPlan({
      prev: m1,
      next: m2,
      checkpointRoot: join(work, 'v2'),
      nextManifestPath: join(work, 'm2.json'),
      ...common,
    }),
    join(work, 'p2.json'),
  );
  [server, coord] = await Promise.all([startStandIn({ tp: 2, devMode: true }), startCoordProcess(FAST)]);
}, 240_000);

afterAll(async () => {
  if (worker && worker.exitCode === null) {
    const gone = new Promise((r) => worker?.once('exit', r));
    worker.kill('SIGTERM');
    await gone;
  }
  await Promise.all([server?.stop(), coord?.stop('SIGKILL')]);
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

const env = () => ({ ...FAST, HOTWEIGHTS_COORD: coord.endpoint, HOTWEIGHTS_STAGING_DIR: staging });
const cli = (args: string[]) => runCli(args, { env: env(), timeoutMs: 180_000 });
const held = () => server.get<Digests>('/standin/digests');

async function waitFor(text: string, ms = 120_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!workerOut.includes(text)) {
    if (Date.now() > deadline || worker?.exitCode !== null) {
      throw new Error(`the worker never printed ${text}; output:\n${workerOut}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('hotweights worker --vllm-url against the stand-in vLLM server', { timeout: 300_000 }, () => {
  it('lands updates in the server, and a fleet rollback re-commits the previous version', async () => {
    worker = spawn(
      process.execPath,
      [
        ...SOURCE_NODE_ARGS,
        CLI_SOURCE,
        'worker',
        '--vllm-url',
        server.url,
        '--vllm-pause-mode',
        'wait',
        '--vllm-commit-timeout',
        '120',
        '--rank',
        '0',
        '--world-size',
        '1',
        '--metrics-port',
        'off',
        '--transport',
        'local',
      ],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...env(), HOTWEIGHTS_SOURCE_ROOTS: work },
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    worker.stdout?.setEncoding('utf8').on('data', (d: string) => {
      workerOut += d;
    });
    worker.stderr?.setEncoding('utf8').on('data', (d: string) => {
      workerOut += d;
    });
    await waitFor('registered as');

    for (const [version, plan] of [
      ['v1', 'p1.json'],
      ['v2', 'p2.json'],
    ] as const) {
      expect((await cli(['coord-submit-plan', '--plan', join(work, plan)])).stderr).toBe('');
      const begun = await cli(['begin', '--version', version, '--wait']);
      expect(begun.stdout + begun.stderr).toContain(`update ${version}: committed`);
      expect(await held()).toEqual(digests[version]);
    }
    const info = await server.get<{ weight_version: string }>('/weight_info');
    expect(info.weight_version).toBe('v2');
    // The flow the worker drove: prepare while serving, then one pause around the load.
    const calls = await server.get<string[]>('/standin/calls');
    expect(calls.slice(calls.lastIndexOf('hw_prepare'))).toEqual(updateCalls('v2'));

    // Fleet rollback: the worker has v1 without fetching it (the extension kept what v2 overwrote).
    const back = await cli(['rollback', '--wait', '--wait-timeout', '120']);
    expect(back.code, back.stdout + back.stderr).toBe(0);
    await waitFor('kept v1');
    expect(await held()).toEqual(digests.v1);
    expect((await server.get<{ weight_version: string }>('/weight_info')).weight_version).toBe('v1');
    expect((await server.get<{ is_paused: boolean }>('/is_paused')).is_paused).toBe(false);
  });

  it('refuses --vllm-* flags beside another adapter, and a bad pause mode, in one line', async () => {
    const other = await cli([
      'worker',
      '--adapter',
      'memory',
      '--vllm-url',
      server.url,
      '--metrics-port',
      'off',
    ]);
    expect(other.code).not.toBe(0);
    expect(other.stderr.trim()).toMatch(/--vllm-\* flags set the vllm adapter, but --adapter is memory/);
    expect(other.stderr.trim().split('\n')).toHaveLength(1);
    const mode = await cli([
      'worker',
      '--vllm-url',
      server.url,
      '--vllm-pause-mode',
      'later',
      '--metrics-port',
      'off',
    ]);
    expect(mode.code).not.toBe(0);
    expect(mode.stderr).toMatch(/pause-mode=later: expected one of wait, abort, keep/);
    // An --adapter-option wins over the flag of the same setting (here the bad value, so it shows).
    const both = await cli([
      'worker',
      '--vllm-url',
      server.url,
      '--vllm-pause-mode',
      'wait',
      '--adapter-option',
      'pause-mode=later',
      '--metrics-port',
      'off',
    ]);
    expect(both.stderr).toMatch(/pause-mode=later: expected one of wait, abort, keep/);
  });

  it('takes several servers, repeated or comma-separated', () => {
    const flags = { vllmUrl: ['http://127.0.0.1:8000', 'http://127.0.0.1:8001,http://127.0.0.1:8002'] };
    expect(withVllmAdapter(flags).adapter).toBe('vllm');
    expect(vllmDefaults({ ...flags, vllmCommitTimeout: '90' })).toEqual({
      vllm: {
        url: 'http://127.0.0.1:8000,http://127.0.0.1:8001,http://127.0.0.1:8002',
        'commit-timeout-s': '90',
      },
    });
    expect(() => vllmDefaults({ vllmUrl: ['http://127.0.0.1:8000,'] })).toThrow(/--vllm-url: an empty URL/);
    expect(vllmDefaults({})).toEqual({});
  });
});
