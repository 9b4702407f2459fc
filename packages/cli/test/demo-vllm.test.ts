/**
 * `hotweights demo --adapter vllm`: the fleet flow into the stand-in vLLM server (a test double
 * of vLLM's HTTP surface whose TP workers run the real extension), shown step by step and checked
 * byte for byte; and the one-line answer when the Python venv it needs is missing.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { standInPaths } from '../src/commands/demo-vllm.js';
import { runCli } from './run-cli.js';

const work = mkdtempSync(join(tmpdir(), 'hw-cli-demo-vllm-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-cli-demo-vllm-'));
const env = { HOTWEIGHTS_STAGING_DIR: staging, HOTWEIGHTS_STATE_DIR: join(work, 'state') };
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

describe('hotweights demo --adapter vllm', { timeout: 300_000 }, () => {
  it('deploys v1 then a delta to v2 into the stand-in server and shows begin, prepare, pause, commit, resume', async () => {
    const dir = join(work, 'demo');
    const res = await runCli(['demo', '--adapter', 'vllm', '--dir', dir], { env, timeoutMs: 280_000 });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toContain('a test double of vLLM');
    expect(res.stdout).toMatch(/deploy v1 \(full\) : .* to 1 worker processes, .*committed/);
    expect(res.stdout).toMatch(/update v2 \(delta\): .* to 1 worker processes, .*committed/);
    for (const v of ['v1', 'v2']) {
      expect(res.stdout).toContain(
        `the server saw: begin -> prepare (hw_prepare on 2 TP workers, still serving) -> pause (mode=wait) -> commit (hw_commit: load_weights on 2 TP workers) -> reset prefix cache -> weight version ${v} -> resume -> release staging`,
      );
    }
    expect(res.stdout).toMatch(/paused \d+\.\d ms \(pause to resume, as the server measured it\)/);
    expect(res.stdout).toMatch(
      /verified: the \d+ tensors the server holds .* are byte-identical to v2's checkpoint/,
    );
  });

  it('says to run scripts/setup-python.sh when the venv is missing', () => {
    const root = join(work, 'checkout/packages/adapter-vllm');
    mkdirSync(join(root, 'test/stand-in'), { recursive: true });
    for (const f of ['vllm_stand_in.py', 'make_checkpoints.py'])
      writeFileSync(join(root, 'test/stand-in', f), '');
    expect(() => standInPaths(root)).toThrow(
      /\.venv\/bin\/python is missing: run `bash scripts\/setup-python.sh`/,
    );
    expect(() => standInPaths(join(work, 'elsewhere'))).toThrow(
      /ships with a hotweights source checkout only/,
    );
  });
});
