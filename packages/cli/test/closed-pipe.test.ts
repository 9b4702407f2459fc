/** `hotweights … | head`: a reader that closes the pipe early ends the output quietly. */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startCoordProcess } from './coord-process.js';
import { CLI_SOURCE, REPO_ROOT, SOURCE_NODE_ARGS } from './run-cli.js';

/** Runs the CLI with its stdout closed before it writes; resolves with the exit code and stderr. */
function runWithClosedStdout(args: readonly string[]): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...SOURCE_NODE_ARGS, CLI_SOURCE, ...args], {
      cwd: REPO_ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.destroy();
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
    });
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

describe('closed stdout', () => {
  it('coord-status and --help exit 0 without an EPIPE stack trace', async () => {
    const coord = await startCoordProcess();
    try {
      for (const args of [['coord-status', '--endpoint', coord.endpoint], ['--help']]) {
        const r = await runWithClosedStdout(args);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
    } finally {
      await coord.stop();
    }
  });
});
