import { existsSync, mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const work = mkdtempSync(join(tmpdir(), 'hw-cli-demo-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-cli-demo-'));
const env = { HOTWEIGHTS_STAGING_DIR: staging, HOTWEIGHTS_STATE_DIR: join(work, 'state') };
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
});

describe('hotweights demo', { timeout: 180_000 }, () => {
  it('publishes, plans, replicates, verifies and commits, and leaves the result to inspect', async () => {
    const dir = join(work, 'demo');
    const res = await runCli(['demo', '--dir', dir], { env, timeoutMs: 170_000 });
    expect(res.stderr).toBe('');
    expect(res.code).toBe(0);
    expect(res.stdout).toMatch(/deploy v0 \(full\) : 28\.0 MiB of 28\.0 MiB \(100\.0%\) to 2 ranks/);
    expect(res.stdout).toMatch(
      /update v1 \(delta\): 6\.0 MiB of 28\.0 MiB \(21\.4%\) to 2 ranks .* committed, pause [\d.]+ ms/,
    );
    expect(res.stdout).toContain(`everything is in ${dir}`);
    expect(readlinkSync(join(dir, 'target/rank-1/current'))).toBe('versions/v1');
    const live = readFileSync(join(dir, 'target/rank-1/current/model-00002-of-00002.safetensors'));
    expect(
      Buffer.compare(live, readFileSync(join(dir, 'checkpoints/finetune/model-00002-of-00002.safetensors'))),
    ).toBe(0);
    // The printed next step works on what the demo left.
    const back = await runCli(['rollback', '--target', join(dir, 'target')], { env });
    expect(back.code, back.stderr).toBe(0);
    expect(readlinkSync(join(dir, 'target/rank-0/current'))).toBe('versions/v0');
    // Running it again replaces the earlier demo; a foreign directory is refused.
    const again = await runCli(['demo', '--dir', dir, '--world-size', '1', '--json'], {
      env,
      timeoutMs: 170_000,
    });
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({ world_size: 1, delta: { committed: true, live: 'v1' } });
    expect(existsSync(join(dir, 'target/current'))).toBe(true);
    const refused = await runCli(['demo', '--dir', join(work, 'state')], { env });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/is not an earlier demo/);
  });
});
