import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CheckpointError } from '@hotweights/core';
import { loadManifest } from '@hotweights/manifest';
import {
  publish,
  readSafetensorsHeader,
  shardRankOfPath,
  writeManifest,
  writeSafetensors,
} from '@hotweights/planner';
import { Blake3Hasher } from '@napi-rs/blake-hash';
import { xxh3 } from '@node-rs/xxhash';
import { afterAll, describe, expect, it } from 'vitest';
import { python, tempDir, tensor } from './fixtures.js';

const tmp = tempDir('publish');
afterAll(tmp.cleanup);

const blake3 = (b: Uint8Array) => new Blake3Hasher().update(Buffer.from(b)).digest('hex');

/** A two-shard checkpoint with an index, config/tokenizer files, odd names and a symlink. */
async function makeCheckpoint(name: string): Promise<string> {
  const root = join(tmp.path, name);
  mkdirSync(join(root, 'sub dir'), { recursive: true });
  await writeSafetensors(join(root, 'model-00001-of-00002.safetensors'), {
    'model.embed_tokens.weight': tensor('BF16', [16, 8], 1, 2),
    'model.layers.0.mlp.weight': tensor('F16', [8, 8], 2, 2),
  });
  await writeSafetensors(join(root, 'model-00002-of-00002.safetensors'), {
    'model.norm.weight': tensor('F32', [8], 3, 4),
    'lm_head.weight': tensor('BF16', [16, 8], 4, 2),
    'model.step': tensor('I64', [1], 5, 8),
  });
  writeFileSync(
    join(root, 'model.safetensors.index.json'),
    JSON.stringify({
      metadata: { total_size: 0 },
      weight_map: {
        'model.embed_tokens.weight': 'model-00001-of-00002.safetensors',
        'model.layers.0.mlp.weight': 'model-00001-of-00002.safetensors',
        'model.norm.weight': 'model-00002-of-00002.safetensors',
        'lm_head.weight': 'model-00002-of-00002.safetensors',
        'model.step': 'model-00002-of-00002.safetensors',
      },
    }),
  );
  writeFileSync(join(root, 'config.json'), '{"hidden_size": 8}\n');
  writeFileSync(join(root, 'sub dir', 'tökenizer spaced.json'), '{"vocab": ["a", "b"]}');
  writeFileSync(join(root, 'empty.txt'), '');
  symlinkSync(join(root, 'config.json'), join(root, 'config-link.json'));
  return root;
}

describe('publish', () => {
  it('makes one entry per tensor plus headers and whole files, with BLAKE3 hashes of the exact bytes', async () => {
    const root = await makeCheckpoint('ckpt');
    const m = await publish({ checkpoint: root, version: 'v1', modelId: 'org/tiny', threads: 2 });
    expect(m.hash_algo).toBe('blake3');
    expect(m.model_id).toBe('org/tiny');
    expect(m.files.map((f) => f.path)).toEqual([
      'config-link.json',
      'config.json',
      'empty.txt',
      'model-00001-of-00002.safetensors',
      'model-00002-of-00002.safetensors',
      'model.safetensors.index.json',
      'sub dir/tökenizer spaced.json',
    ]);
    expect(m.size).toBe(5 + 2 + 5); // whole files, headers, tensors
    const tensors = [...Array(m.size).keys()].map((i) => m.entry(i)).filter((e) => e.kind === 'tensor');
    expect(tensors.map((e) => e.tensor).sort()).toEqual([
      'lm_head.weight',
      'model.embed_tokens.weight',
      'model.layers.0.mlp.weight',
      'model.norm.weight',
      'model.step',
    ]);
    // every entry's hash is BLAKE3 of exactly its byte range
    for (let i = 0; i < m.size; i++) {
      const e = m.entry(i);
      const file = readFileSync(join(root, e.file));
      expect(e.hash).toBe(`blake3:${blake3(file.subarray(e.file_offset, e.file_offset + e.nbytes))}`);
    }
    const lm = m.get('lm_head.weight:0');
    expect(lm).toMatchObject({
      dtype: 'BF16',
      shape: [16, 8],
      nbytes: 256,
      file: 'model-00002-of-00002.safetensors',
    });
    const header = await readSafetensorsHeader(join(root, 'model-00002-of-00002.safetensors'));
    expect(m.get('model-00002-of-00002.safetensors:0')).toMatchObject({
      kind: 'header',
      file_offset: 0,
      nbytes: header.headerBytes,
    });
    // a file's entries cover it entirely
    for (const f of m.files) {
      const es = m.entriesOfFile(f.path);
      expect(es.reduce((s, e) => s + e.nbytes, 0)).toBe(f.size);
    }
    expect(m.get('empty.txt:0')).toMatchObject({
      kind: 'file',
      nbytes: 0,
      hash: `blake3:${blake3(new Uint8Array())}`,
    });
    expect(m.get('config-link.json:0')?.hash).toBe(m.get('config.json:0')?.hash);
  });

  it('is deterministic, and offers xxh3-64 and sha256', async () => {
    const root = await makeCheckpoint('ckpt-algos');
    const a = await publish({ checkpoint: root, version: 'v1', threads: 1, taskBytes: 1 });
    const b = await publish({ checkpoint: root, version: 'v1', threads: 2 });
    expect(a.digest).toBe(b.digest);
    const x = await publish({ checkpoint: root, version: 'v1', hash: 'xxh3-64' });
    const s = await publish({ checkpoint: root, version: 'v1', hash: 'sha256' });
    const e = x.get('model.norm.weight:0');
    expect(e).toBeDefined();
    if (!e) return;
    const bytes = readFileSync(join(root, e.file)).subarray(e.file_offset, e.file_offset + e.nbytes);
    expect(e.hash).toBe(`xxh3-64:${xxh3.xxh64(bytes, 0n).toString(16).padStart(16, '0')}`);
    expect(s.get('model.norm.weight:0')?.hash).toBe(
      `sha256:${createHash('sha256').update(bytes).digest('hex')}`,
    );
    await expect(publish({ checkpoint: root, version: 'v1', hash: 'md5' })).rejects.toThrowError(
      /unknown hash algorithm "md5": expected one of blake3, xxh3-64, sha256/,
    );
  });

  it('hashes a file larger than the read chunk in several tasks across threads', async () => {
    const root = join(tmp.path, 'big');
    mkdirSync(root);
    const big = tensor('F32', [3, 1024, 1024], 9, 4); // 12 MiB: many reads of the 512 KiB buffer
    await writeSafetensors(join(root, 'model.safetensors'), { big, small: tensor('F32', [4], 10, 4) });
    let last = 0;
    const m = await publish({
      checkpoint: root,
      version: 'v1',
      threads: 2,
      taskBytes: 1024,
      onProgress: (p) => {
        last = p.bytesDone;
      },
    });
    expect(m.get('big:0')?.hash).toBe(`blake3:${blake3(big.data)}`);
    expect(last).toBe(m.total_bytes);
  });

  it('writes the manifest atomically, outside the checkpoint, and never publishes its own manifests', async () => {
    const root = await makeCheckpoint('ckpt-out');
    const m = await publish({ checkpoint: root, version: 'v1' });
    await expect(writeManifest(m, join(root, 'm.json'), { checkpoint: root })).rejects.toThrowError(
      /refusing to write .*m\.json inside the checkpoint directory/,
    );
    expect(readdirSync(root)).not.toContain('m.json');
    // without options, the manifest's own checkpoint_root is protected
    await expect(writeManifest(m, join(root, 'm2.json'))).rejects.toThrowError(
      /inside the checkpoint directory/,
    );
    await expect(
      writeManifest(m, join(root, 'sub dir', 'x', 'm.json'), { checkpoint: root }),
    ).rejects.toThrowError(/inside the checkpoint/);
    // asked explicitly: allowed, and the next publish skips it
    await writeManifest(m, join(root, 'm.json'), { checkpoint: root, allowInsideCheckpoint: true });
    const again = await publish({ checkpoint: root, version: 'v1' });
    expect(again.files.map((f) => f.path)).not.toContain('m.json');
    expect(again.digest).toBe(m.digest);
    const withIt = await publish({ checkpoint: root, version: 'v1', includeHotweightsFiles: true });
    expect(withIt.files.map((f) => f.path)).toContain('m.json');
    const out = join(tmp.path, 'm-out.json');
    await writeManifest(m, out, { checkpoint: root });
    const loaded = await loadManifest(out, { verifyDigest: true });
    expect(loaded.digest).toBe(m.digest);
    expect(loaded.files.map((f) => f.path)).toContain('sub dir/tökenizer spaced.json');
    expect(readdirSync(tmp.path).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  });

  it('derives shard ranks from TP-style paths', () => {
    expect(shardRankOfPath('model-00001-of-00004.safetensors')).toBe(0);
    expect(shardRankOfPath('rank1/model.safetensors')).toBe(1);
    expect(shardRankOfPath('model_tp_3.safetensors')).toBe(3);
    expect(shardRankOfPath('mp_rank_02/model.safetensors')).toBe(2);
    expect(shardRankOfPath('tokenizer.json')).toBe(0);
  });

  it('keys TP shards by rank, so the same tensor name in two ranks is not a duplicate', async () => {
    const root = join(tmp.path, 'tp');
    mkdirSync(root);
    await writeSafetensors(join(root, 'model_rank0.safetensors'), { w: tensor('F32', [2], 1, 4) });
    await writeSafetensors(join(root, 'model_rank1.safetensors'), { w: tensor('F32', [2], 2, 4) });
    const m = await publish({ checkpoint: root, version: 'v1' });
    expect(m.get('w:0')?.file).toBe('model_rank0.safetensors');
    expect(m.get('w:1')?.file).toBe('model_rank1.safetensors');
  });
});

describe('publish cross-checked with Python', () => {
  it('hashes exactly the bytes torch loads for each tensor of a Python-written multi-shard checkpoint', async () => {
    const root = join(tmp.path, 'py-ckpt');
    mkdirSync(root);
    const out = python(
      `
import sys, json, hashlib, torch
from safetensors.torch import save_file
root = sys.argv[1]
g = torch.Generator().manual_seed(0)
shards = {
  'model-00001-of-00002.safetensors': {'embed.weight': torch.randn(32, 16, generator=g).to(torch.bfloat16), 'layers.0.w': torch.randn(16, 16, generator=g)},
  'model-00002-of-00002.safetensors': {'layers.1.w': torch.randn(16, 16, generator=g).to(torch.float16), 'step': torch.tensor([7, 8], dtype=torch.int64)},
}
index = {'metadata': {'total_size': 0}, 'weight_map': {}}
hashes = {}
for name, tensors in shards.items():
    save_file(tensors, f'{root}/{name}', metadata={'format': 'pt'})
    for k, v in tensors.items():
        index['weight_map'][k] = name
        hashes[k] = [str(v.dtype), list(v.shape), hashlib.sha256(v.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()]
json.dump(index, open(f'{root}/model.safetensors.index.json', 'w'))
print(json.dumps(hashes))
`,
      [root],
    );
    const expected = JSON.parse(out) as Record<string, [string, number[], string]>;
    const m = await publish({ checkpoint: root, version: 'py', hash: 'sha256' });
    const dtypes: Record<string, string> = {
      'torch.bfloat16': 'BF16',
      'torch.float32': 'F32',
      'torch.float16': 'F16',
      'torch.int64': 'I64',
    };
    for (const [name, [dtype, shape, hex]] of Object.entries(expected)) {
      expect(m.get(`${name}:0`)).toMatchObject({ dtype: dtypes[dtype], shape, hash: `sha256:${hex}` });
    }
  });
});

describe('publish rejects bad checkpoints with one clear error', () => {
  async function expectError(root: string, re: RegExp) {
    const err = await publish({ checkpoint: root, version: 'v1' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CheckpointError);
    expect((err as Error).message).toMatch(re);
  }

  it('a missing directory, or a file instead of one', async () => {
    await expectError(join(tmp.path, 'nope'), /checkpoint .*nope: ENOENT/);
    writeFileSync(join(tmp.path, 'afile'), 'x');
    await expectError(join(tmp.path, 'afile'), /is not a directory/);
  });

  it('a truncated shard, naming it', async () => {
    const root = await makeCheckpoint('bad-trunc');
    const p = join(root, 'model-00002-of-00002.safetensors');
    const b = readFileSync(p);
    writeFileSync(p, b.subarray(0, b.length - 3));
    await expectError(
      root,
      /model-00002-of-00002\.safetensors: not a valid safetensors file: .*past the end of the data/,
    );
  });

  it('a corrupt header, naming it', async () => {
    const root = await makeCheckpoint('bad-corrupt');
    const p = join(root, 'model-00001-of-00002.safetensors');
    const b = readFileSync(p);
    b.write('#', 8);
    writeFileSync(p, b);
    await expectError(
      root,
      /model-00001-of-00002\.safetensors: not a valid safetensors file: header is not valid UTF-8 JSON/,
    );
  });

  it('the same tensor in two shards (duplicate key)', async () => {
    const root = join(tmp.path, 'dup');
    mkdirSync(root);
    await writeSafetensors(join(root, 'a.safetensors'), { w: tensor('F32', [2], 1, 4) });
    await writeSafetensors(join(root, 'b.safetensors'), { w: tensor('F32', [2], 2, 4) });
    await expectError(root, /tensor "w" \(shard rank 0\) appears in both a\.safetensors and b\.safetensors/);
  });

  it('an index that disagrees with the shards', async () => {
    const root = await makeCheckpoint('bad-index');
    const idx = join(root, 'model.safetensors.index.json');
    const doc = JSON.parse(readFileSync(idx, 'utf8'));
    doc.weight_map['lm_head.weight'] = 'model-00001-of-00002.safetensors';
    writeFileSync(idx, JSON.stringify(doc));
    await expectError(
      root,
      /weight_map\.lm_head\.weight names "model-00001-of-00002\.safetensors", which does not contain that tensor/,
    );
    delete doc.weight_map['lm_head.weight'];
    writeFileSync(idx, JSON.stringify(doc));
    await expectError(
      root,
      /tensor "lm_head\.weight" of model-00002-of-00002\.safetensors is missing from weight_map/,
    );
    doc.weight_map['lm_head.weight'] = 'model-00003-of-00002.safetensors';
    writeFileSync(idx, JSON.stringify(doc));
    await expectError(
      root,
      /names "model-00003-of-00002\.safetensors", which is not a safetensors file of the checkpoint/,
    );
    writeFileSync(idx, '{not json');
    await expectError(root, /model\.safetensors\.index\.json: not valid JSON/);
  });

  it('a dangling symlink', async () => {
    const root = await makeCheckpoint('bad-link');
    symlinkSync(join(root, 'gone.bin'), join(root, 'dangling.bin'));
    await expectError(root, /dangling\.bin: cannot stat \(ENOENT; a dangling symlink\?\)/);
  });

  it('a symlink out of the checkpoint, unless followSymlinks (which reports it)', async () => {
    const root = await makeCheckpoint('link-out');
    const outside = join(tmp.path, 'outside-secret.bin');
    writeFileSync(outside, 'not part of any checkpoint');
    symlinkSync(outside, join(root, 'extra.bin'));
    await expectError(
      root,
      /extra\.bin is a symlink to .*outside-secret\.bin, outside the checkpoint .*: refusing to publish what it points to \(.*--follow-symlinks/,
    );
    const followed: string[] = [];
    const m = await publish({
      checkpoint: root,
      version: 'v1',
      followSymlinks: true,
      onFollowedLink: (link, target) => followed.push(`${link} -> ${target}`),
    });
    expect(followed).toEqual([`extra.bin -> ${outside}`]);
    expect(m.files.map((f) => f.path)).toContain('extra.bin');
  });
});
