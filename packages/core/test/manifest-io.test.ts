import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildManifest,
  committedManifestPath,
  loadManifest,
  type ManifestEntry,
  parseManifest,
  readCommittedManifest,
  recordCommittedManifest,
  SchemaError,
  serializeManifest,
} from '@hotweights/core';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: the bad-input cases mutate raw, untyped JSON
type RawDoc = any;

const h = (c: string) => `blake3:${c.repeat(64)}`;

function entries(): ManifestEntry[] {
  return [
    // given out of order on purpose: buildManifest sorts by file then offset
    {
      key: 'w:0',
      tensor: 'w',
      shard_rank: 0,
      kind: 'tensor',
      file: 'model.safetensors',
      file_offset: 64,
      nbytes: 24,
      dtype: 'F32',
      shape: [2, 3],
      hash: h('a'),
    },
    {
      key: 'model.safetensors:0',
      tensor: 'model.safetensors',
      shard_rank: 0,
      kind: 'header',
      file: 'model.safetensors',
      file_offset: 0,
      nbytes: 64,
      dtype: null,
      shape: null,
      hash: h('b'),
    },
    {
      key: 'b:0',
      tensor: 'b',
      shard_rank: 0,
      kind: 'tensor',
      file: 'model.safetensors',
      file_offset: 88,
      nbytes: 8,
      dtype: 'I64',
      shape: [1],
      hash: h('c'),
    },
    {
      key: 'scalar:0',
      tensor: 'scalar',
      shard_rank: 0,
      kind: 'tensor',
      file: 'model.safetensors',
      file_offset: 96,
      nbytes: 2,
      dtype: 'BF16',
      shape: [],
      hash: h('d'),
    },
    {
      key: 'config.json:0',
      tensor: 'config.json',
      shard_rank: 0,
      kind: 'file',
      file: 'config.json',
      file_offset: 0,
      nbytes: 10,
      dtype: null,
      shape: null,
      hash: h('e'),
    },
    {
      key: 'empty file:0',
      tensor: 'empty file',
      shard_rank: 0,
      kind: 'file',
      file: 'empty file',
      file_offset: 0,
      nbytes: 0,
      dtype: null,
      shape: null,
      hash: h('f'),
    },
  ];
}

function sample(modelId: string | null = 'org/model') {
  return buildManifest(
    {
      version: 'v1',
      model_id: modelId,
      created_at: '2026-01-01T00:00:00.000Z',
      hash_algo: 'blake3',
      files: [
        { path: 'model.safetensors', size: 98, kind: 'safetensors' },
        { path: 'config.json', size: 10, kind: 'file' },
        { path: 'empty file', size: 0, kind: 'file' },
      ],
    },
    entries(),
  );
}

describe('manifest on-disk format', () => {
  it('round-trips every entry field through serialize and parse', () => {
    const m = sample();
    const text = serializeManifest(m);
    const back = parseManifest(text, 'm.json');
    expect(back.size).toBe(6);
    expect(back.digest).toBe(m.digest);
    expect(back.total_bytes).toBe(108);
    const byKey = new Map(entries().map((e) => [e.key, e]));
    for (let i = 0; i < back.size; i++) {
      const e = back.entry(i);
      expect(e).toEqual(byKey.get(e.key));
    }
    expect(back.get('scalar:0')?.shape).toEqual([]);
    expect(back.get('missing:0')).toBeUndefined();
    expect(back.entriesOfFile('model.safetensors').map((e) => e.file_offset)).toEqual([0, 64, 88, 96]);
    expect(back.entriesOfFile('nope')).toEqual([]);
    // files sorted by path, paths stored once
    expect(back.files.map((f) => f.path)).toEqual(['config.json', 'empty file', 'model.safetensors']);
    expect(text.match(/model\.safetensors"/g)?.length).toBeLessThanOrEqual(3);
  });

  it('has a digest that ignores created_at and formatting but not content', () => {
    const m = sample();
    const text = serializeManifest(m);
    const reformatted = JSON.stringify({ ...JSON.parse(text), created_at: '2030-01-01T00:00:00Z' }, null, 4);
    expect(parseManifest(reformatted, 'r.json', { verifyDigest: true }).digest).toBe(m.digest);
    const tampered = JSON.parse(text);
    tampered.entries.nbytes[0] = 9;
    tampered.files[0].size = 9;
    // loads for planning trust the stored digest; verifyDigest recomputes it
    expect(parseManifest(JSON.stringify(tampered), 't.json').digest).toBe(m.digest);
    expect(() => parseManifest(JSON.stringify(tampered), 't.json', { verifyDigest: true })).toThrowError(
      /t\.json: digest: expected sha256:/,
    );
  });

  it('defers the duplicate-key check to the first lookup with lazyIndex', async () => {
    const doc = JSON.parse(serializeManifest(sample()));
    delete doc.digest;
    doc.entries.tensor = doc.entries.tensor.map((t: string) => (t === 'b' ? 'w' : t));
    const path = join(dir, 'dup-lazy.json');
    writeFileSync(path, JSON.stringify(doc));
    const m = await loadManifest(path, { lazyIndex: true });
    expect(m.size).toBe(6);
    expect(() => m.indexOfTensor('w', 0)).toThrowError(
      /dup-lazy\.json: entries\.tensor\[\d\]: expected a unique key/,
    );
    await expect(loadManifest(path)).rejects.toThrowError(/expected a unique key/);
  });

  it('loads a file and names it in errors', async () => {
    const path = join(dir, 'ok.json');
    writeFileSync(path, serializeManifest(sample()));
    expect((await loadManifest(path)).version).toBe('v1');
    await expect(loadManifest(join(dir, 'absent.json'))).rejects.toThrowError(
      /cannot read manifest .*absent\.json: ENOENT/,
    );
  });

  const bad: [string, (doc: RawDoc) => unknown, RegExp][] = [
    ['not JSON', () => '{"schema": ', /m\.json: \(root\): expected valid JSON/],
    ['wrong schema', (d) => ({ ...d, schema: 'x' }), /schema: expected "hotweights\.manifest"/],
    ['newer manifest_version', (d) => ({ ...d, manifest_version: 9 }), /manifest_version: expected 1/],
    [
      'path escaping the root',
      (d) => ({ ...d, files: [{ ...d.files[0], path: '../etc/passwd' }, ...d.files.slice(1)] }),
      /files\[0\]\.path: expected a relative path inside the checkpoint root/,
    ],
    [
      'absolute path',
      (d) => ({ ...d, files: [{ ...d.files[0], path: '/etc/passwd' }, ...d.files.slice(1)] }),
      /files\[0\]\.path/,
    ],
    [
      'column length mismatch',
      (d) => ({ ...d, entries: { ...d.entries, nbytes: d.entries.nbytes.slice(1) } }),
      /entries\.nbytes: expected 6 values/,
    ],
    [
      'negative size',
      (d) => ({
        ...d,
        entries: { ...d.entries, nbytes: d.entries.nbytes.map((o: number, i: number) => (i === 3 ? -1 : o)) },
      }),
      /entries\.nbytes\[3\]: expected an integer >= 0/,
    ],
    [
      'entry counts not adding up',
      (d) => ({ ...d, files: d.files.map((f: RawDoc, i: number) => (i === 0 ? { ...f, entries: 2 } : f)) }),
      /files\[\]\.entries: expected entry counts adding up to entries\.count \(6\)/,
    ],
    [
      'a file without entries',
      (d) => ({ ...d, files: d.files.map((f: RawDoc, i: number) => (i === 0 ? { ...f, entries: 0 } : f)) }),
      /files\[0\]\.entries: expected an integer >= 1/,
    ],
    [
      'hash column too short',
      (d) => ({ ...d, entries: { ...d.entries, hash: d.entries.hash.slice(2) } }),
      /entries\.hash: expected 384 hex digits/,
    ],
    [
      'unknown hash algo',
      (d) => ({ ...d, hash_algo: 'md5' }),
      /hash_algo: expected one of blake3, xxh3-64, sha256/,
    ],
    [
      'tensors not adding up to the file size',
      (d) => ({
        ...d,
        entries: { ...d.entries, nbytes: d.entries.nbytes.map((n: number, i: number) => (i === 3 ? 20 : n)) },
      }),
      /entries \(file "model\.safetensors"\): expected entries covering the file's 98 bytes \(got "94 bytes covered/,
    ],
    [
      'file not covered',
      (d) => ({
        ...d,
        files: d.files.map((f: RawDoc) => (f.path === 'config.json' ? { ...f, size: 11 } : f)),
      }),
      /entries \(file "config\.json"\): expected entries covering the file's 11 bytes/,
    ],
    [
      'duplicate key',
      (d) => ({
        ...d,
        entries: { ...d.entries, tensor: d.entries.tensor.map((t: string) => (t === 'b' ? 'w' : t)) },
      }),
      /expected a unique key \(tensor:shard_rank\); "w:0" is also entry/,
    ],
    ['missing entries', (d) => ({ ...d, entries: undefined }), /entries: expected an object/],
  ];
  for (const [name, mutate, re] of bad) {
    it(`rejects ${name} with file, field and expectation`, () => {
      const doc = JSON.parse(serializeManifest(sample()));
      delete doc.digest;
      const mutated = mutate(doc);
      const text = typeof mutated === 'string' ? mutated : JSON.stringify(mutated);
      let err: unknown;
      try {
        parseManifest(text, 'm.json');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SchemaError);
      expect((err as Error).message).toMatch(/^m\.json: /);
      expect((err as Error).message).toMatch(re);
    });
  }
});

describe('committed manifest record', () => {
  it('is null before any commit, then returns what was recorded, per model', async () => {
    const state = join(dir, 'state');
    expect(await readCommittedManifest(state, 'org/model')).toBeNull();
    const m = sample();
    const path = join(dir, 'rec.json');
    writeFileSync(path, serializeManifest(m));
    const recorded = await recordCommittedManifest(state, path);
    expect(recorded).toBe(committedManifestPath(state, 'org/model'));
    expect((await readCommittedManifest(state, 'org/model'))?.digest).toBe(m.digest);
    expect(await readCommittedManifest(state, null)).toBeNull();
    // a Manifest object works too, and a model without id has its own record
    await recordCommittedManifest(state, sample(null));
    expect((await readCommittedManifest(state, null))?.model_id).toBeNull();
    // ids cannot escape the state directory
    expect(committedManifestPath(state, '../../x')).toContain(join(state, 'manifests'));
    expect(committedManifestPath(state, '..')).not.toMatch(/manifests\/\.\.\//);
  });

  it('refuses to record an invalid manifest and keeps the previous record', async () => {
    const state = join(dir, 'state2');
    await recordCommittedManifest(state, sample());
    const badPath = join(dir, 'bad.json');
    writeFileSync(badPath, '{"schema":"hotweights.manifest"}');
    await expect(recordCommittedManifest(state, badPath)).rejects.toThrowError(SchemaError);
    expect((await readCommittedManifest(state, 'org/model'))?.version).toBe('v1');
  });

  it('reports a corrupt record instead of treating it as absent', async () => {
    const state = join(dir, 'state3');
    await recordCommittedManifest(state, sample());
    writeFileSync(committedManifestPath(state, 'org/model'), 'garbage');
    await expect(readCommittedManifest(state, 'org/model')).rejects.toThrowError(/expected valid JSON/);
  });
});
