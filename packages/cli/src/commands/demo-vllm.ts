/**
 * `hotweights demo --adapter vllm`: the demo's fleet flow landing in a vLLM-shaped server. It
 * starts the stand-in vLLM server of @hotweights/adapter-vllm (a TEST DOUBLE of vLLM's HTTP
 * surface, not vLLM: its two tensor-parallel CPU workers run the real hotweights_vllm extension on
 * a tiny Llama), deploys v1 and a delta to v2 through an embedded coordinator and one
 * `hotweights worker --vllm-url` process, prints what the server saw (prepare while serving, then
 * pause, commit, resume) and checks that the server's weights equal v2 byte for byte.
 * It needs a hotweights source checkout with its Python venv (`bash scripts/setup-python.sh`).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { ConfigError, TimeoutError, VerificationError } from '@hotweights/core';
import { createPlan, publish, writeManifest, writePlan } from '@hotweights/planner';
import { recordSourceRoot } from '@hotweights/runtime';
import type { CliContext } from '../context.js';
import { type FleetUpdateSummary, fleetLine, fmt, runFleet } from './demo-fleet.js';

/** The stand-in's files in a source checkout of @hotweights/adapter-vllm, and the venv's Python. */
export interface StandInPaths {
  readonly python: string;
  readonly server: string;
  readonly checkpoints: string;
}

/** Finds the stand-in under the adapter package folder `root`; says what to do when it cannot. */
export function standInPaths(root: string): StandInPaths {
  const server = join(root, 'test/stand-in/vllm_stand_in.py');
  const checkpoints = join(root, 'test/stand-in/make_checkpoints.py');
  if (!existsSync(server) || !existsSync(checkpoints)) {
    throw new ConfigError(
      `demo --adapter vllm: the stand-in vLLM server is not in ${root} (it ships with a hotweights source checkout only); run the demo from a checkout`,
    );
  }
  const checkout = resolve(root, '../..');
  const python = join(checkout, '.venv/bin/python');
  if (!existsSync(python)) {
    throw new ConfigError(
      `demo --adapter vllm runs a stand-in vLLM server in Python and ${python} is missing: run \`bash scripts/setup-python.sh\` in ${checkout} first`,
    );
  }
  return { python, server, checkpoints };
}

function adapterRoot(): string {
  try {
    const pkg = createRequire(import.meta.url).resolve('@hotweights/adapter-vllm/package.json');
    return dirname(realpathSync(pkg));
  } catch {
    throw new ConfigError(
      'demo --adapter vllm needs the vllm adapter: npm install @hotweights/adapter-vllm beside the CLI',
    );
  }
}

function freePort(): Promise<number> {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.once('error', fail);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => ok(port));
    });
  });
}

interface Server {
  readonly url: string;
  readonly child: ChildProcess;
  get<T>(path: string): Promise<T>;
}

async function startServer(p: StandInPaths, tp: number): Promise<Server> {
  const port = await freePort();
  const env = { ...process.env, VLLM_SERVER_DEV_MODE: '1' };
  const child = spawn(p.python, [p.server, '--port', String(port), '--tp', String(tp)], {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-2000);
  });
  const url = `http://127.0.0.1:${port}`;
  const get = async <T>(path: string): Promise<T> => (await (await fetch(`${url}${path}`)).json()) as T;
  const deadline = Date.now() + 120_000;
  while (
    !(await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    ))
  ) {
    if (child.exitCode !== null) {
      throw new ConfigError(`demo: the stand-in vLLM server exited (${child.exitCode}): ${stderr.trim()}`);
    }
    if (Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new TimeoutError(`demo: the stand-in vLLM server did not answer within 120 s: ${stderr.trim()}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return { url, child, get };
}

async function stopServer(s: Server): Promise<void> {
  if (s.child.exitCode !== null || s.child.signalCode !== null) return;
  const gone = new Promise((r) => s.child.once('exit', r));
  const kill = setTimeout(() => s.child.kill('SIGKILL'), 5000);
  s.child.kill('SIGTERM');
  await gone;
  clearTimeout(kill);
}

/** What the server saw for one update, as the steps a newcomer should recognise. */
function steps(calls: readonly string[], tp: number): string {
  const label = (c: string): string => {
    if (c === 'hw_prepare') return `prepare (hw_prepare on ${tp} TP workers, still serving)`;
    if (c.startsWith('pause:')) return `pause (mode=${c.slice(6)})`;
    if (c === 'hw_commit') return `commit (hw_commit: load_weights on ${tp} TP workers)`;
    if (c === 'reset_prefix_cache') return 'reset prefix cache';
    if (c.startsWith('update_weight_version:')) return `weight version ${c.slice(22)}`;
    if (c === 'hw_release') return 'release staging';
    return c;
  };
  return ['begin', ...calls.filter((c) => c !== 'hw_info').map(label)].join(' -> ');
}

const TP = 2;

export async function runVllmDemo(
  c: CliContext,
  o: { readonly dir: string; readonly json: boolean; say(text: string): void },
): Promise<void> {
  const paths = standInPaths(adapterRoot());
  const ckpts = join(o.dir, 'checkpoints');
  await mkdir(ckpts, { recursive: true });
  await promisify(execFile)(paths.python, [paths.checkpoints, ckpts]);
  const digests = JSON.parse(readFileSync(join(ckpts, 'digests.json'), 'utf8')) as Record<
    'v1' | 'v2',
    Record<string, string>
  >;
  const [v1, v2] = [join(ckpts, 'v1'), join(ckpts, 'v2')];
  const m1 = await publish({ checkpoint: v1, version: 'v1', modelId: 'hotweights/demo-llama' });
  const m2 = await publish({ checkpoint: v2, version: 'v2', modelId: 'hotweights/demo-llama' });
  for (const root of [v1, v2]) await recordSourceRoot(c.config.stateDir, root);
  const cs: CliContext = {
    ...c,
    config: { ...c.config, sourceRoots: [...(c.config.sourceRoots ?? []), v1, v2] },
  };
  const out = join(o.dir, 'plans');
  await mkdir(out, { recursive: true });
  await writeManifest(m1, join(out, 'v1.manifest'));
  await writeManifest(m2, join(out, 'v2.manifest'));
  const common = { bucketBytes: 1 << 20, worldSize: 1 };
  const full = createPlan({
    prev: null,
    next: m1,
    checkpointRoot: v1,
    nextManifestPath: join(out, 'v1.manifest'),
    ...common,
  });
  const delta = createPlan({
    prev: m1,
    next: m2,
    checkpointRoot: v2,
    nextManifestPath: join(out, 'v2.manifest'),
    ...common,
  });
  await writePlan(full, join(out, 'v1-full.json'));
  await writePlan(delta, join(out, 'v2-delta.json'));
  o.say(
    `published a tiny Llama v1 and v2 (${m2.size} entries, ${fmt(m2.total_bytes)}); planned v1 in full and the delta to v2 (${fmt(delta.total_bytes)})`,
  );

  const server = await startServer(paths, TP);
  try {
    o.say(
      `started the stand-in vLLM server at ${server.url}: a test double of vLLM's HTTP surface (not vLLM) whose ${TP} tensor-parallel CPU workers run the real hotweights_vllm extension`,
    );
    o.say('starting an embedded coordinator and 1 `hotweights worker --vllm-url` process');
    const fleet = await runFleet(cs, {
      dir: o.dir,
      adapterArgs: () => ['--vllm-url', server.url],
      worldSize: 1,
      updates: [
        { plan: full, next: m1 },
        { plan: delta, next: m2 },
      ],
    });
    const calls = await server.get<string[]>('/standin/calls');
    const pauses = await server.get<number[]>('/standin/pauses');
    const starts = calls.flatMap((call, i) => (call === 'hw_prepare' ? [i] : []));
    const labels = ['deploy v1 (full) ', 'update v2 (delta)'];
    fleet.summaries.forEach((s: FleetUpdateSummary, i) => {
      o.say(fleetLine(labels[i] as string, s));
      o.say(`    the server saw: ${steps(calls.slice(starts[i], starts[i + 1]), TP)}`);
      o.say(
        `    paused ${(1000 * (pauses[i] ?? Number.NaN)).toFixed(1)} ms (pause to resume, as the server measured it)`,
      );
    });
    // Independent check: the tensors the server's workers hold, gathered across TP ranks, are v2's.
    const held = await server.get<Record<string, string>>('/standin/digests');
    const wrong = Object.keys(digests.v2).filter((n) => held[n] !== digests.v2[n]);
    if (wrong.length > 0 || Object.keys(held).length !== Object.keys(digests.v2).length) {
      throw new VerificationError(`demo: the server's ${wrong[0] ?? 'tensors'} differ from v2's checkpoint`);
    }
    if (o.json) {
      c.json({
        dir: o.dir,
        adapter: 'vllm',
        server: server.url,
        tp: TP,
        full: fleet.summaries[0],
        delta: fleet.summaries[1],
        pauses_s: pauses,
        verified_tensors: wrong.length === 0 ? Object.keys(held).length : 0,
      });
      return;
    }
    o.say(
      `  verified: the ${Object.keys(held).length} tensors the server holds (gathered from its ${TP} TP workers) are byte-identical to v2's checkpoint`,
    );
    o.say('');
    o.say(`everything is in ${o.dir} (checkpoints, plans, logs); the stand-in server has stopped.`);
    o.say('with a real vLLM: see docs/VLLM.md (nothing here ran against a real vLLM or a GPU)');
  } finally {
    await stopServer(server);
  }
}
