/**
 * Tensor-parallel plans land in targets: each rank's target holds its shards (the files of its
 * shard rank), byte-exact, after a full deployment and after a delta, and nothing of the others.
 */
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';
import { cliWorkspace } from './workspace.js';

const { work, env } = cliWorkspace('hw-cli-tp-');

/** rank<r>/model.safetensors with two F32 tensors of 1024 values; layers.1 differs between versions. */
function writeSharded(): void {
  const header = JSON.stringify({
    'layers.0.w': { dtype: 'F32', shape: [1024], data_offsets: [0, 4096] },
    'layers.1.w': { dtype: 'F32', shape: [1024], data_offsets: [4096, 8192] },
  });
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  for (const r of [0, 1]) {
    const l0 = randomBytes(4096);
    for (const dir of ['tp_a', 'tp_b']) {
      mkdirSync(join(work, dir, `rank${r}`), { recursive: true });
      writeFileSync(
        join(work, dir, `rank${r}`, 'model.safetensors'),
        Buffer.concat([len, Buffer.from(header), l0, randomBytes(4096)]),
      );
    }
  }
}

async function cli(args: string[]) {
  const r = await runCli(args, { env, cwd: work, timeoutMs: 170_000 });
  expect(r.code, r.stderr).toBe(0);
  return r;
}

describe('tensor-parallel plans', { timeout: 180_000 }, () => {
  it('land in every rank target as its shards, full then delta', async () => {
    writeSharded();
    const groups = '{"0": [0, 2], "1": [1, 3]}';
    await cli(['publish', '--checkpoint', 'tp_a', '--version', 'v0', '--output', 'v0.manifest']);
    await cli(['publish', '--checkpoint', 'tp_b', '--version', 'v1', '--output', 'v1.manifest']);
    for (const [next, out, ckpt] of [
      ['v0.manifest', 'full.json', 'tp_a'],
      ['v1.manifest', 'delta.json', 'tp_b'],
    ] as const) {
      await cli(['plan', '--next', next, '--world-size', '4', '--tp-groups', groups, '--output', out]);
      const r = await cli(['replicate', '--plan', out, '--commit', '--target', 'target', '--no-metrics']);
      expect(r.stdout).toContain('on every rank');
      for (const rank of [0, 1, 2, 3]) {
        const live = join(work, 'target', `rank-${rank}`, 'current');
        const shard = `rank${rank % 2}`;
        expect(readdirSync(live)).toEqual([shard]);
        expect(
          readFileSync(join(live, shard, 'model.safetensors')).equals(
            readFileSync(join(work, ckpt, shard, 'model.safetensors')),
          ),
        ).toBe(true);
      }
    }
  });
});
