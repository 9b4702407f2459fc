import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManifestEntry } from '@hotweights/core';
import {
  buildManifest,
  checkManifestFileUnchanged,
  loadManifest,
  parseManifestBinary,
  serializeManifest,
  serializeManifestBinary,
} from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';
// The background check and the streamed digest are internal: test the modules.
import { assignDigestJob, finishDigestCheck, startDigestCheck, startDigestJob } from '../src/digest-check.js';
import { binaryManifestFileDigest } from '../src/manifest-file-digest.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-digest-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A published manifest: a header and two tensors in one safetensors file. */
function published() {
  const entry = (
    tensor: string,
    kind: 'header' | 'tensor',
    offset: number,
    nbytes: number,
  ): ManifestEntry => ({
    key: `${tensor}:0`,
    tensor,
    shard_rank: 0,
    kind,
    file: 'model.safetensors',
    file_offset: offset,
    nbytes,
    dtype: kind === 'tensor' ? 'F32' : null,
    shape: kind === 'tensor' ? [nbytes / 4] : null,
    hash: `blake3:${String(offset % 10).repeat(64)}`,
  });
  return buildManifest(
    {
      version: 'v1',
      model_id: 'org/model',
      created_at: 'now',
      hash_algo: 'blake3',
      files: [{ path: 'model.safetensors', size: 72, kind: 'safetensors' }],
    },
    [entry('model.safetensors', 'header', 0, 8), entry('a', 'tensor', 8, 32), entry('b', 'tensor', 40, 32)],
  );
}

/** The binary form with one byte of tensor b's hash flipped (as an edit after publish would). */
function editedBinary(): Buffer {
  const bin = serializeManifestBinary(published());
  const header = JSON.parse(bin.subarray(16, 16 + bin.readUInt32LE(8)).toString('utf8'));
  const [hashAt] = header.columns.hash as [number, number];
  bin[hashAt + 2 * 32] ^= 0x01;
  return bin;
}

const MISMATCH = (file: string) =>
  new RegExp(
    `${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: digest: expected sha256:[0-9a-f]{64} \\(the manifest was modified after it was made\\) \\(got sha256:[0-9a-f]{64}, the stored digest, which does not match the content`,
  );

describe('the stored digest, checked on load', () => {
  it('refuses a JSON manifest edited after publish, naming the file', async () => {
    const path = join(dir, 'edited.json');
    writeFileSync(path, serializeManifest(published()).replace('"version": "v1"', '"version": "v2"'));
    await expect(loadManifest(path)).rejects.toThrow(MISMATCH(path));
    await expect(loadManifest(path, { map: true })).rejects.toThrow(MISMATCH(path));
    // Asked not to, the load trusts the stored digest.
    expect((await loadManifest(path, { verifyDigest: false })).version).toBe('v2');
  });

  it('refuses a binary manifest edited after publish, read or mapped', async () => {
    const path = join(dir, 'edited.manifest');
    writeFileSync(path, editedBinary());
    await expect(loadManifest(path)).rejects.toThrow(MISMATCH(path));
    await expect(loadManifest(path, { map: true, lazyIndex: true })).rejects.toThrow(MISMATCH(path));
  });

  it('checks a large mapped manifest on a worker thread, the verdict given before it is used', () => {
    // (Mapped manifests of 16 MiB and more take this path; the check itself is size-blind.)
    const edited = join(dir, 'edited-bg.manifest');
    writeFileSync(edited, editedBinary());
    const m = parseManifestBinary(readFileSync(edited), edited);
    startDigestCheck(m, edited);
    expect(() => finishDigestCheck(m, edited)).toThrow(MISMATCH(edited));
    const ok = join(dir, 'ok-bg.manifest');
    writeFileSync(ok, serializeManifestBinary(published()));
    const good = parseManifestBinary(readFileSync(ok), ok);
    startDigestCheck(good, ok);
    expect(() => finishDigestCheck(good, ok)).not.toThrow();
  });

  it('streams the digest of a binary file as the decoded columns give it, or says it cannot', () => {
    const m = published();
    const ascii = join(dir, 'stream.manifest');
    writeFileSync(ascii, serializeManifestBinary(m));
    expect(binaryManifestFileDigest(ascii)).toBe(m.digest);
    expect(binaryManifestFileDigest(join(dir, 'edited.manifest'))).not.toBe(m.digest);
    const wide = buildManifest({ ...m, files: [{ path: 'é.bin', size: 4, kind: 'file' }] }, [
      {
        ...m.entry(1),
        key: 'é.bin:0',
        tensor: 'é.bin',
        kind: 'file',
        file: 'é.bin',
        file_offset: 0,
        nbytes: 4,
        dtype: null,
        shape: null,
      },
    ]);
    const utf8 = join(dir, 'wide.manifest');
    writeFileSync(utf8, serializeManifestBinary(wide));
    expect(binaryManifestFileDigest(utf8)).toBeNull();
  });

  it('accepts the manifests as published, in both forms, read or mapped', async () => {
    const m = published();
    const json = join(dir, 'ok.json');
    const bin = join(dir, 'ok.manifest');
    writeFileSync(json, serializeManifest(m));
    writeFileSync(bin, serializeManifestBinary(m));
    for (const path of [json, bin]) expect((await loadManifest(path)).digest).toBe(m.digest);
    const mapped = await Promise.all([loadManifest(bin, { map: true }), loadManifest(bin, { map: true })]);
    for (const x of mapped) expect(() => checkManifestFileUnchanged(x)).not.toThrow();
    expect(mapped[0].digest).toBe(m.digest);
  });
});

describe('the background check of a file', () => {
  it("judges the file's content: a check started on an edited file refuses a manifest whose columns match", () => {
    // The columns in memory match their stored digest; the file at `path` does not (an edit
    // after publish). A mapped manifest's columns are that file, so the file is what is judged.
    const path = join(dir, 'judged.manifest');
    writeFileSync(path, editedBinary());
    const m = published();
    startDigestCheck(m, path);
    expect(() => finishDigestCheck(m, path)).toThrow(MISMATCH(path));
    // Asked before the manifest exists (as loadManifest asks while it parses), then handed to it.
    const job = startDigestJob(path);
    expect(job).toBeDefined();
    const later = published();
    assignDigestJob(later, job);
    expect(() => finishDigestCheck(later, path)).toThrow(MISMATCH(path));
    // With no check started, the verdict is the loaded columns' own, and they match.
    expect(() => finishDigestCheck(published(), path)).not.toThrow();
  });
});
