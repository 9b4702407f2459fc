/**
 * loadManifest with `map: true` on the edges a user relies on: a mapped file edited in place with
 * its size and mtime put back is still noticed; a read manifest is a copy that later edits of the
 * file do not affect; a mapped manifest large enough to have its digest checked on a worker
 * thread is still refused when edited, at the check callers run before using it.
 */
import { mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManifestEntry } from '@hotweights/core';
import {
  buildManifest,
  checkManifestFileUnchanged,
  loadManifest,
  parseManifestBinary,
  serializeManifestBinary,
} from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';
// The background check is internal: its fallback is tested on the module.
import { finishDigestCheck, startDigestCheck } from '../src/digest-check.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-load-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A manifest of `count` tensors named with `pad` extra characters each (pads the file's size). */
function manifest(count: number, pad: number) {
  const entries: ManifestEntry[] = [
    {
      key: 'model.safetensors:0',
      tensor: 'model.safetensors',
      shard_rank: 0,
      kind: 'header',
      file: 'model.safetensors',
      file_offset: 0,
      nbytes: 8,
      dtype: null,
      shape: null,
      hash: `blake3:${'f'.repeat(64)}`,
    },
  ];
  for (let i = 0; i < count; i++)
    entries.push({
      key: `layers.${i}.${'w'.repeat(pad)}:0`,
      tensor: `layers.${i}.${'w'.repeat(pad)}`,
      shard_rank: 0,
      kind: 'tensor',
      file: 'model.safetensors',
      file_offset: 8 + i * 4,
      nbytes: 4,
      dtype: 'F32',
      shape: [1],
      hash: `blake3:${(i % 16).toString(16).repeat(64)}`,
    });
  return buildManifest(
    {
      version: 'v1',
      model_id: 'org/model',
      created_at: 'now',
      hash_algo: 'blake3',
      files: [{ path: 'model.safetensors', size: 8 + count * 4, kind: 'safetensors' }],
    },
    entries,
  );
}

/** The binary manifest with one byte of its last tensor's hash flipped (an edit after publish). */
function edited(bin: Buffer): Buffer {
  const out = Buffer.from(bin);
  const header = JSON.parse(out.subarray(16, 16 + out.readUInt32LE(8)).toString('utf8'));
  const [hashAt, hashBytes] = header.columns.hash as [number, number];
  out[hashAt + hashBytes - 1] ^= 0x01;
  return out;
}

/** What `f` throws, as {code, message, details}; fails when it throws nothing. */
function thrown(f: () => unknown): { code?: string; message: string; details?: unknown } {
  try {
    f();
  } catch (err) {
    const e = err as Error & { code?: string; details?: unknown };
    return { code: e.code, message: e.message, details: e.details };
  }
  throw new Error('nothing was thrown');
}

describe('loadManifest with map: true', () => {
  it('notices an in-place edit of a mapped file whose size and mtime were put back', async () => {
    const path = join(dir, 'in-place.manifest');
    const bin = serializeManifestBinary(manifest(3, 0));
    writeFileSync(path, bin);
    // Whole seconds, so the mtime can be put back exactly.
    const when = new Date(2020, 0, 1);
    utimesSync(path, when, when);
    const mapped = await loadManifest(path, { map: true, verifyDigest: false });
    const read = await loadManifest(path, { verifyDigest: false });
    expect(() => checkManifestFileUnchanged(mapped)).not.toThrow();

    const before = statSync(path, { bigint: true });
    writeFileSync(path, edited(bin));
    utimesSync(path, when, when);
    const after = statSync(path, { bigint: true });
    expect([after.ino, after.size, after.mtimeNs]).toEqual([before.ino, before.size, before.mtimeNs]);
    expect(thrown(() => checkManifestFileUnchanged(mapped))).toEqual({
      code: 'HW_SCHEMA',
      message: `manifest ${path} was modified while it was in use: run the command again`,
      details: { file: path },
    });
    // A read manifest is a copy: later edits of its file do not concern it.
    expect(() => checkManifestFileUnchanged(read)).not.toThrow();
  });

  it('names the file when it cannot be read', async () => {
    const path = join(dir, 'absent.manifest');
    const err = await loadManifest(path).catch(
      (e: unknown) => e as Error & { code?: string; details?: unknown },
    );
    expect([err.code, err.message, err.details]).toEqual([
      'HW_NOT_FOUND',
      `cannot read manifest ${path}: ENOENT`,
      { file: path },
    ]);
  });

  it('refuses an edited manifest too large to check at load, before it is used', async () => {
    // 16 MiB and more: the digest is checked on a worker thread while the caller goes on.
    const bin = serializeManifestBinary(manifest(20_000, 840));
    expect(bin.length).toBeGreaterThanOrEqual(16 << 20);
    const good = join(dir, 'large.manifest');
    writeFileSync(good, bin);
    const bad = join(dir, 'large-edited.manifest');
    writeFileSync(bad, edited(bin));

    const ok = await loadManifest(good, { map: true, lazyIndex: true });
    expect(() => checkManifestFileUnchanged(ok)).not.toThrow();
    // The load returns before the verdict; the check callers run before acting waits for it.
    const m = await loadManifest(bad, { map: true, lazyIndex: true });
    const refused = thrown(() => checkManifestFileUnchanged(m));
    expect(refused.code).toBe('HW_SCHEMA');
    expect(refused.message).toMatch(
      new RegExp(
        `^${bad.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: digest: expected sha256:[0-9a-f]{64} \\(the manifest was modified after it was made\\)`,
      ),
    );
    // A read of the same file is refused at load, with the same verdict.
    await expect(loadManifest(bad)).rejects.toThrow(refused.message);
    // Asked not to check, a mapped load trusts the stored digest.
    const trusted = await loadManifest(bad, { map: true, verifyDigest: false });
    expect(() => checkManifestFileUnchanged(trusted)).not.toThrow();
    expect(readFileSync(bad).length).toBe(bin.length);

    // Its digest is asked for as soon as it is mapped: a file that then fails validation is
    // refused with the validation's error, and the check of the next manifest is not disturbed.
    const invalid = Buffer.from(bin);
    const header = JSON.parse(invalid.subarray(16, 16 + invalid.readUInt32LE(8)).toString('utf8'));
    invalid[(header.columns.kind as [number, number])[0] + 5] = 'x'.charCodeAt(0);
    const invalidPath = join(dir, 'large-invalid.manifest');
    writeFileSync(invalidPath, invalid);
    await expect(loadManifest(invalidPath, { map: true })).rejects.toThrow(/entries\.kind/);
    const again = await loadManifest(bad, { map: true, lazyIndex: true });
    expect(thrown(() => checkManifestFileUnchanged(again)).message).toBe(refused.message);
    const fine = await loadManifest(good, { map: true, lazyIndex: true });
    expect(() => checkManifestFileUnchanged(fine)).not.toThrow();
  }, 60_000);
});

describe('the background digest check', () => {
  it('checks here when the worker cannot read the file: a good manifest passes, an edited one does not', () => {
    const path = join(dir, 'gone.manifest');
    const bin = serializeManifestBinary(manifest(3, 0));
    for (const [bytes, ok] of [
      [bin, true],
      [edited(bin), false],
    ] as const) {
      writeFileSync(path, bytes);
      const m = parseManifestBinary(readFileSync(path), path);
      rmSync(path);
      // The worker answers with an error (no such file); the verdict comes from the loaded columns.
      startDigestCheck(m, path);
      if (ok) expect(() => finishDigestCheck(m, path)).not.toThrow();
      else expect(thrown(() => finishDigestCheck(m, path)).message).toMatch(/digest: expected sha256:/);
    }
  });
});
