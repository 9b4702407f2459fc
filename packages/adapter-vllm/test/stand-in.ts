/** Starts and stops the stand-in vLLM server (test/stand-in/vllm_stand_in.py) on 127.0.0.1. */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';

export const REPO = join(import.meta.dirname, '../../..');
export const PYTHON = join(REPO, '.venv/bin/python');
const SCRIPT = join(import.meta.dirname, 'stand-in/vllm_stand_in.py');

/** What the stand-in records for one update driven by the adapter: prepare while serving, then one pause. */
export function updateCalls(version: string): string[] {
  return [
    'hw_prepare',
    'pause:wait',
    'hw_commit',
    'reset_prefix_cache',
    `update_weight_version:${version}`,
    'resume',
    'hw_release',
  ];
}

export interface StandIn {
  readonly url: string;
  get<T>(path: string): Promise<T>;
  post(path: string, body: unknown): Promise<void>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const kill = setTimeout(() => child.kill('SIGKILL'), 5000);
    child.once('exit', () => {
      clearTimeout(kill);
      resolve();
    });
    child.kill('SIGTERM');
  });
}

export async function startStandIn(o: {
  tp: number;
  devMode: boolean;
  /** LlamaConfig size overrides (the benchmark's larger model). */
  sizes?: Record<string, number>;
}): Promise<StandIn> {
  const port = await freePort();
  const env = { ...process.env };
  if (o.devMode) env.VLLM_SERVER_DEV_MODE = '1';
  else delete env.VLLM_SERVER_DEV_MODE;
  const args = [
    SCRIPT,
    '--port',
    String(port),
    '--tp',
    String(o.tp),
    '--sizes',
    JSON.stringify(o.sizes ?? {}),
  ];
  const child = spawn(PYTHON, args, {
    env,
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4000);
  });
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`stand-in vLLM exited with ${child.exitCode}: ${stderr}`);
    const up = await fetch(`${url}/health`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (Date.now() > deadline) {
      await stopProcess(child);
      throw new Error(`stand-in vLLM did not start: ${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return {
    url,
    async get<T>(path: string) {
      return (await (await fetch(`${url}${path}`)).json()) as T;
    },
    async post(path: string, body: unknown) {
      const r = await fetch(`${url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      if (!r.ok) throw new Error(`${path}: ${r.status}`);
    },
    stop: () => stopProcess(child),
  };
}
