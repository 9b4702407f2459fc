import { spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadManifest } from '@hotweights/manifest';
import { writeSafetensors } from '@hotweights/planner';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI_SOURCE, REPO_ROOT, runCli, SOURCE_NODE_ARGS } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-cli-publish-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { HOTWEIGHTS_STATE_DIR: join(dir, 'state') };

async function checkpoint(name: string): Promise<string> {
  const root = join(dir, name);
  mkdirSync(root, { recursive: true });
  await writeSafetensors(join(root, 'model.safetensors'), {
    'layers.0.w': { dtype: 'F32', shape: [4, 4], data: new Uint8Array(64).fill(3) },
    'layers.0.b': { dtype: 'BF16', shape: [4], data: new Uint8Array(8).fill(4) },
  });
  writeFileSync(join(root, 'config.json'), '{"a": 1}');
  return root;
}

describe('hotweights publish', { timeout: 180_000 }, () => {
  it('writes a manifest and prints a one-line summary (no progress when piped)', async () => {
    const root = await checkpoint('ck');
    const out = join(dir, 'm.json');
    const r = await runCli(
      ['publish', '--checkpoint', root, '--version', 'v1', '--model-id', 'org/m', '--output', out],
      { env },
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /^published v1: 2 tensors in 1 safetensors file\(s\), 1 other file\(s\), .* hashed with blake3 .* -> .*m\.json\n$/,
    );
    const m = await loadManifest(out);
    expect(m.model_id).toBe('org/m');
    expect(m.checkpoint_root).toBe(root);
    expect(m.get('layers.0.w:0')).toMatchObject({ dtype: 'F32', shape: [4, 4], nbytes: 64 });
  });

  it('honours --hash and HOTWEIGHTS_HASH, and prints JSON with --json', async () => {
    const root = await checkpoint('ck-hash');
    const r = await runCli(
      ['publish', '--checkpoint', root, '--version', 'v1', '--output', join(dir, 'x.json'), '--json'],
      {
        env: { ...env, HOTWEIGHTS_HASH: 'xxh3-64' },
      },
    );
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary).toMatchObject({
      version: 'v1',
      hash_algo: 'xxh3-64',
      entries: 4,
      tensors: 2,
      safetensors_files: 1,
      other_files: 1,
    });
    expect((await loadManifest(join(dir, 'x.json'))).get('config.json:0')?.hash).toMatch(
      /^xxh3-64:[0-9a-f]{16}$/,
    );
    const bad = await runCli(
      ['publish', '--checkpoint', root, '--version', 'v1', '--output', join(dir, 'y.json'), '--hash', 'md5'],
      { env },
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^hotweights: error \[HW_CONFIG\]: unknown hash algorithm "md5"/);
  });

  it('draws progress on a terminal (stderr is a TTY), and none when piped', async () => {
    const root = await checkpoint('ck-tty');
    const out = join(dir, 'tty.json');
    // `script` runs the command on a pseudo-terminal and copies what it prints.
    const cmd = [
      process.execPath,
      ...SOURCE_NODE_ARGS,
      CLI_SOURCE,
      'publish',
      '--checkpoint',
      root,
      '--version',
      'v1',
      '--output',
      out,
    ].join(' ');
    const r = spawnSync('script', ['-qec', cmd, '/dev/null'], {
      cwd: REPO_ROOT,
      encoding: 'utf8',
      env: { ...process.env, ...env },
      timeout: 120_000,
    });
    expect(r.status).toBe(0);
    expect(r.stdout).toMatch(/\rhashing .* \/ .* \(100%\)/);
    expect(r.stdout).toMatch(/published v1/);
  });

  it('refuses to write into the checkpoint, and fails cleanly on a corrupt shard with no output file', async () => {
    const root = await checkpoint('ck-bad');
    const inside = await runCli(
      ['publish', '--checkpoint', root, '--version', 'v1', '--output', join(root, 'm.json')],
      { env },
    );
    expect(inside.code).toBe(1);
    expect(inside.stderr).toMatch(
      /\[HW_OUTPUT_IN_CHECKPOINT\]: refusing to write .*m\.json inside the checkpoint directory/,
    );
    expect(readdirSync(root).sort()).toEqual(['config.json', 'model.safetensors']);
    const shard = join(root, 'model.safetensors');
    writeFileSync(shard, readFileSync(shard).subarray(0, 40));
    const out = join(dir, 'never.json');
    const r = await runCli(['publish', '--checkpoint', root, '--version', 'v1', '--output', out], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /^hotweights: error \[HW_CHECKPOINT\]: .*model\.safetensors: not a valid safetensors file: /,
    );
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
    expect(readdirSync(dir).filter((n) => n.startsWith('never') || n.startsWith('.never'))).toEqual([]);
  });
});
