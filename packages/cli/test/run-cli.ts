/**
 * Runs the real `hotweights` command as a child process, from its TypeScript sources (tsx and the
 * `@hotweights/source` condition), so CLI tests need no build step and see exactly what a user
 * sees: stdout, stderr and the exit code.
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const CLI_SOURCE = fileURLToPath(new URL('../src/bin.ts', import.meta.url));
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));
/**
 * Node arguments that run TypeScript sources of the workspace. tsx is named by its file URL:
 * a bare `--import tsx` resolves from the child's cwd, which fails in a temp directory.
 */
export const SOURCE_NODE_ARGS = [
  '--conditions=@hotweights/source',
  '--import',
  pathToFileURL(createRequire(import.meta.url).resolve('tsx')).href,
];

export interface CliResult {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

export function runCli(
  args: readonly string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number } = {},
): Promise<CliResult> {
  const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, CLI_SOURCE, ...args], {
    cwd: options.cwd ?? REPO_ROOT,
    env: { ...process.env, ...options.env },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  child.stdin.end(options.input ?? '');
  return collect(child, options.timeoutMs);
}

/** A started command's exit and output; killed after `timeoutMs`. */
export function collect(child: ChildProcessWithoutNullStreams, timeoutMs = 60_000): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
