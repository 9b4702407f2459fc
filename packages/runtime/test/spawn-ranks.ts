/** Starts N real rank processes from TypeScript sources and collects their output. */
import { type ChildProcess, spawn } from 'node:child_process';

export const SOURCE_NODE_ARGS = ['--conditions=@hotweights/source', '--import', 'tsx'];

export interface RankResult {
  readonly rank: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function spawnRank(
  script: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): { child: ChildProcess; done: Promise<Omit<RankResult, 'rank'>> } {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, script, ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (d: string) => {
    stdout += d;
  });
  child.stderr?.setEncoding('utf8').on('data', (d: string) => {
    stderr += d;
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 120_000);
  const done = new Promise<Omit<RankResult, 'rank'>>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
  return { child, done };
}

export async function runRanks(
  worldSize: number,
  script: string,
  args: (rank: number) => readonly string[],
): Promise<RankResult[]> {
  const started = Array.from({ length: worldSize }, (_, rank) => spawnRank(script, args(rank)));
  return Promise.all(started.map(async (s, rank) => ({ rank, ...(await s.done) })));
}
