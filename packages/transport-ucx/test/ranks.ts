/**
 * Starts a UCX job the torchrun way: N node processes with RANK, WORLD_SIZE, MASTER_ADDR=127.0.0.1
 * and a free MASTER_PORT, each running a fixture from TypeScript source.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { createServer } from 'node:net';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const PACKAGE_ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_ROOT = join(PACKAGE_ROOT, '../..');
export const SOURCE_NODE_ARGS = ['--conditions=@hotweights/source', '--import', 'tsx'];

export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface RankResult {
  readonly rank: number;
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export interface Job {
  readonly children: ChildProcess[];
  /** Resolves when every rank has exited (a rank still running after `timeoutMs` is killed). */
  readonly done: Promise<RankResult[]>;
}

export async function startRanks(
  worldSize: number,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number } = {},
): Promise<Job> {
  const port = await freePort();
  const children: ChildProcess[] = [];
  const results: Promise<RankResult>[] = [];
  for (let rank = 0; rank < worldSize; rank++) {
    const child = spawn(process.execPath, args, {
      cwd: options.cwd ?? PACKAGE_ROOT,
      env: {
        ...process.env,
        RANK: String(rank),
        WORLD_SIZE: String(worldSize),
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        ...options.env,
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => {
      stdout += d.toString();
    });
    child.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 90_000);
    results.push(
      new Promise((resolve) =>
        child.on('close', (code, signal) => {
          clearTimeout(timer);
          resolve({ rank, code, signal, stdout, stderr });
        }),
      ),
    );
  }
  return { children, done: Promise.all(results) };
}

export function jsonLines<T>(text: string): T[] {
  return text
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as T);
}

/** UCX's own warnings on stderr (e.g. about a peer that went away) are not ours. */
export function ourErrors(stderr: string): string {
  return stderr
    .split('\n')
    .filter((l) => l.trim() && !/ UCX {2}(WARN|ERROR|DIAG) /.test(l))
    .join('\n');
}
