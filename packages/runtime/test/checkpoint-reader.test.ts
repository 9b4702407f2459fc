/**
 * Path confinement on the source rank (checkpoint-reader.ts): whatever a plan's item uris say, the
 * source reads only files inside the checkpoint root, symlinks included. Real files and symlinks
 * in a temporary directory.
 */
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { PlanItem } from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';
import { CheckpointReader } from '../src/checkpoint-reader.js';

const base = mkdtempSync(join(tmpdir(), 'hw-ckpt-reader-'));
afterAll(() => rmSync(base, { recursive: true, force: true }));

const root = join(base, 'ckpt');
mkdirSync(join(root, 'sub'), { recursive: true });
writeFileSync(join(root, 'model.bin'), Buffer.from('0123456789abcdef'));
writeFileSync(join(root, 'sub', 'shard.bin'), Buffer.from('SHARD-BYTES'));
writeFileSync(join(base, 'secret.txt'), Buffer.from('do not read me'));
symlinkSync('model.bin', join(root, 'alias.bin'));
symlinkSync('../secret.txt', join(root, 'leak.txt'));
symlinkSync(base, join(root, 'up'));
symlinkSync(root, join(base, 'ckpt-link'));

const item = (uri: string, over: Partial<PlanItem> = {}): PlanItem =>
  ({
    key: `${uri}:0`,
    tensor: uri,
    shard_rank: 0,
    kind: 'file',
    uri,
    file_offset: 0,
    nbytes: 4,
    offset: 0,
    dtype: null,
    shape: null,
    hash: `blake3:${'0'.repeat(64)}`,
    ...over,
  }) as PlanItem;

/** What reading `it` from `reader` fails with: code, message and details. */
async function failure(reader: CheckpointReader, it: PlanItem) {
  const err = await reader.readItem(it, new Uint8Array(64)).then(
    () => undefined,
    (e: unknown) => e as Error & { code?: string; details?: unknown },
  );
  if (!err) throw new Error(`${it.uri} was read`);
  return { code: err.code, message: err.message, details: err.details };
}

describe('CheckpointReader', () => {
  it('reads items of files inside the root, through symlinks that stay inside, at the offset asked', async () => {
    for (const r of [root, join(base, 'ckpt-link')]) {
      const reader = new CheckpointReader(r);
      const target = new Uint8Array(16);
      await reader.readItem(item('model.bin', { file_offset: 10, nbytes: 6, offset: 2 }), target);
      await reader.readItem(item('sub/shard.bin', { file_offset: 6, nbytes: 5 }), target, 9);
      await reader.readItem(item('alias.bin', { file_offset: 0, nbytes: 1 }), target, 15);
      expect(Buffer.from(target).toString('latin1')).toBe('\0\0abcdef\0BYTES\x000');
      expect(await reader.file('model.bin')).toBe(await reader.file('model.bin'));
      await reader.close();
    }
  });

  it('refuses every uri that leads out of the root, symlinks included, and reads nothing', async () => {
    const reader = new CheckpointReader(root);
    for (const uri of [
      '../secret.txt',
      // Refused before it is looked up: outside the root, whether or not it exists.
      '../not-there.txt',
      '..',
      join(base, 'secret.txt'),
      'sub/../../secret.txt',
      'leak.txt',
      'up/secret.txt',
      '.',
      '',
      'sub/..',
    ])
      expect(await failure(reader, item(uri)), uri).toEqual({
        code: 'HW_PATH_ESCAPE',
        message: `path ${JSON.stringify(uri)} escapes the root ${root}`,
        details: { path: uri, root },
      });
    // A name that only starts with two dots is inside.
    writeFileSync(join(root, '..data'), Buffer.from('dots'));
    const target = new Uint8Array(4);
    await reader.readItem(item('..data'), target);
    expect(Buffer.from(target).toString()).toBe('dots');
    await reader.close();
  });

  it('names the file and the root when a file is missing, short, or the root is unreadable', async () => {
    const reader = new CheckpointReader(root);
    expect(await failure(reader, item('absent.bin'))).toEqual({
      code: 'HW_CHECKPOINT',
      message: `cannot open absent.bin in checkpoint ${root}: ENOENT`,
      details: { file: 'absent.bin' },
    });
    expect(await failure(reader, item('model.bin', { key: 'w:0', file_offset: 12, nbytes: 8 }))).toEqual({
      code: 'HW_CHECKPOINT',
      message: `model.bin in ${root} ends before item w:0 (needs bytes 12..20): the checkpoint changed after publish?`,
      details: { file: 'model.bin', key: 'w:0' },
    });
    await reader.close();
    const gone = join(base, 'no-such-root');
    const missing = await failure(new CheckpointReader(gone), item('model.bin'));
    expect([missing.code, missing.message]).toEqual([
      'HW_CHECKPOINT',
      `checkpoint root ${gone} is not readable: ENOENT: no such file or directory, realpath '${gone}'`,
    ]);
  });

  it('reads patch items from the plan patch file, and names it when it is absent or short', async () => {
    const patchFile = join(base, 'plan.patches');
    writeFileSync(patchFile, Buffer.from('PATCHDATA'));
    const patched = (file_offset: number, nbytes: number) =>
      item('model.bin', {
        key: 'p:0',
        nbytes,
        patch: {
          encoding: 'xor-brotli',
          base_hash: `blake3:${'1'.repeat(64)}`,
          hash: `blake3:${'2'.repeat(64)}`,
          file_offset,
          tensor_nbytes: 16,
        },
      } as Partial<PlanItem>);
    const reader = new CheckpointReader(root, patchFile);
    const target = new Uint8Array(5);
    await reader.readItem(patched(5, 4), target, 1);
    expect(Buffer.from(target).toString('latin1')).toBe('\0DATA');
    expect(await failure(reader, patched(6, 4))).toEqual({
      code: 'HW_CHECKPOINT',
      message: `patch file ${patchFile} ends before the patch of p:0 (needs bytes 6..10): it changed after the plan was made?`,
      details: { key: 'p:0' },
    });
    await reader.close();
    expect(await failure(new CheckpointReader(root), patched(0, 4))).toEqual({
      code: 'HW_CHECKPOINT',
      message: 'item p:0 is a patch, but the plan names no patch file',
      details: { key: 'p:0' },
    });
    const absent = join(base, 'absent.patches');
    const noFile = await failure(new CheckpointReader(root, absent), patched(0, 4));
    expect([noFile.code, noFile.message]).toEqual([
      'HW_CHECKPOINT',
      `cannot open the plan's patch file ${absent}: ENOENT`,
    ]);
  });
});
