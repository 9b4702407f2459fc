import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ManifestEntry, SchemaError } from '@hotweights/core';
import {
  BINARY_MANIFEST_MAGIC,
  buildManifest,
  committedManifestPath,
  isBinaryManifest,
  loadManifest,
  parseManifest,
  readCommittedManifest,
  readCommittedRecord,
  recordCommittedManifest,
  serializeManifest,
} from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';
import { entryOf, fakeHash, WHOLE_FILES, wholeFileEntries } from './entry-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-io-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// biome-ignore lint/suspicious/noExplicitAny: the bad-input cases mutate raw, untyped JSON
type RawDoc = any;

const h = fakeHash;

// The on-disk numeric columns are base64 of little-endian typed arrays; these read and write them.
const f64 = (b64: string): number[] =>
  Array.from(new Float64Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer));
const encF64 = (xs: number[]): string => Buffer.from(new Float64Array(xs).buffer).toString('base64');
const u32 = (b64: string): number[] =>
  Array.from(new Uint32Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer));
const encU32 = (xs: number[]): string => Buffer.from(new Uint32Array(xs).buffer).toString('base64');
const encI32 = (xs: number[]): string => Buffer.from(new Int32Array(xs).buffer).toString('base64');
function names(d: RawDoc): string[] {
  let at = 0;
  return u32(d.entries.tensor_length).map((n) => {
    const name = d.entries.tensor.slice(at, at + n);
    at += n;
    return name;
  });
}
function withNames(d: RawDoc, list: string[]): RawDoc {
  return {
    ...d,
    entries: { ...d.entries, tensor: list.join(''), tensor_length: encU32(list.map((t) => t.length)) },
  };
}
const mapF64 = (d: RawDoc, field: string, f: (v: number, i: number) => number): RawDoc => ({
  ...d,
  entries: { ...d.entries, [field]: encF64(f64(d.entries[field]).map(f)) },
});

function entries(): ManifestEntry[] {
  return [
    // given out of order on purpose: buildManifest sorts by file then offset
    entryOf({
      tensor: 'w',
      file: 'model.safetensors',
      kind: 'tensor',
      at: 64,
      nbytes: 24,
      dtype: 'F32',
      shape: [2, 3],
      hash: h('a'),
    }),
    entryOf({
      tensor: 'model.safetensors',
      file: 'model.safetensors',
      kind: 'header',
      at: 0,
      nbytes: 64,
      dtype: null,
      shape: null,
      hash: h('b'),
    }),
    entryOf({
      tensor: 'b',
      file: 'model.safetensors',
      kind: 'tensor',
      at: 88,
      nbytes: 8,
      dtype: 'I64',
      shape: [1],
      hash: h('c'),
    }),
    entryOf({
      tensor: 'scalar',
      file: 'model.safetensors',
      kind: 'tensor',
      at: 96,
      nbytes: 2,
      dtype: 'BF16',
      shape: [],
      hash: h('d'),
    }),
    ...wholeFileEntries(),
  ];
}

function sample(modelId: string | null = 'org/model', version = 'v1') {
  return buildManifest(
    {
      version,
      model_id: modelId,
      created_at: '2026-01-01T00:00:00.000Z',
      hash_algo: 'blake3',
      files: [{ path: 'model.safetensors', size: 98, kind: 'safetensors' }, ...WHOLE_FILES],
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
    const tampered = mapF64(JSON.parse(text), 'nbytes', (v, i) => (i === 0 ? 9 : v));
    tampered.files[0].size = 9;
    // loads for planning trust the stored digest; verifyDigest recomputes it
    expect(parseManifest(JSON.stringify(tampered), 't.json').digest).toBe(m.digest);
    expect(() => parseManifest(JSON.stringify(tampered), 't.json', { verifyDigest: true })).toThrowError(
      /t\.json: digest: expected sha256:/,
    );
  });

  it('defers the duplicate-key check to the first lookup with lazyIndex', async () => {
    const parsed = JSON.parse(serializeManifest(sample()));
    delete parsed.digest;
    const doc = withNames(
      parsed,
      names(parsed).map((t) => (t === 'b' ? 'w' : t)),
    );
    const path = join(dir, 'dup-lazy.json');
    writeFileSync(path, JSON.stringify(doc));
    const m = await loadManifest(path, { lazyIndex: true, verifyDigest: false });
    expect(m.size).toBe(6);
    expect(() => m.indexOfTensor('w', 0)).toThrowError(
      /dup-lazy\.json: entries\.tensor\[\d\]: expected a unique key/,
    );
    await expect(loadManifest(path, { verifyDigest: false })).rejects.toThrowError(/expected a unique key/);
    // With the digest check on (the default), a manifest without a stored digest is refused.
    await expect(loadManifest(path)).rejects.toThrowError(/dup-lazy\.json: digest: expected a stored digest/);
  });

  it('loads the written layout and any other JSON layout of it alike', async () => {
    // Odd names: non-ASCII (read by the fast path), and quote, backslash, newline (JSON escapes:
    // the loader parses that file whole); a reformatted file is parsed whole too.
    for (const odd of ['größe', 'a"b\\c\nd']) {
      const list = entries().map((e) => (e.key === 'b:0' ? { ...e, key: `${odd}:0`, tensor: odd } : e));
      const m = buildManifest(
        {
          version: 'v1',
          model_id: null,
          created_at: '2026-01-01T00:00:00.000Z',
          hash_algo: 'blake3',
          files: [
            { path: 'model.safetensors', size: 98, kind: 'safetensors' },
            { path: 'config.json', size: 10, kind: 'file' },
            { path: 'empty file', size: 0, kind: 'file' },
          ],
        },
        list,
      );
      const text = serializeManifest(m);
      const written = join(dir, 'odd.json');
      const reformatted = join(dir, 'odd-reformatted.json');
      writeFileSync(written, text);
      writeFileSync(reformatted, JSON.stringify(JSON.parse(text), null, 1));
      for (const path of [written, reformatted]) {
        const back = await loadManifest(path, { verifyDigest: true });
        expect(back.digest).toBe(m.digest);
        expect(back.get(`${odd}:0`)?.tensor).toBe(odd);
        expect(back.indexOfTensor(odd, 0)).toBeGreaterThanOrEqual(0);
        for (let i = 0; i < back.size; i++) expect(back.entry(i)).toEqual(m.entry(i));
      }
    }
  });

  it('loads a file and names it in errors', async () => {
    const path = join(dir, 'ok.json');
    writeFileSync(path, serializeManifest(sample()));
    expect((await loadManifest(path)).version).toBe('v1');
    // The same checks hold on the fast path that reads the written layout's columns directly.
    const cut = join(dir, 'cut.json');
    writeFileSync(cut, serializeManifest(sample()).replace(/("hash": "[^"]*)[^"]{4}"/, '$1"'));
    await expect(loadManifest(cut)).rejects.toThrowError(
      /cut\.json: entries\.hash: expected 256 base64 characters .*\(got "252 characters"\)/,
    );
    await expect(loadManifest(join(dir, 'absent.json'))).rejects.toThrowError(
      /cannot read manifest .*absent\.json: ENOENT/,
    );
  });

  const bad: [string, (doc: RawDoc) => unknown, RegExp][] = [
    ['not JSON', () => '{"schema": ', /m\.json: \(root\): expected valid JSON/],
    ['wrong schema', (d) => ({ ...d, schema: 'x' }), /schema: expected "hotweights\.manifest"/],
    ['newer manifest_version', (d) => ({ ...d, manifest_version: 9 }), /manifest_version: expected 2/],
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
      (d) => ({ ...d, entries: { ...d.entries, nbytes: encF64(f64(d.entries.nbytes).slice(1)) } }),
      /entries\.nbytes: expected 64 base64 characters \(6 f64 byte counts: 48 bytes\) \(got "56 characters"\)/,
    ],
    [
      'negative size',
      (d) => mapF64(d, 'nbytes', (o, i) => (i === 3 ? -1 : o)),
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
      (d) => ({ ...d, entries: { ...d.entries, hash: d.entries.hash.slice(4) } }),
      /entries\.hash: expected 256 base64 characters \(6 raw blake3 digests of 32 bytes: 192 bytes\)/,
    ],
    [
      'unknown hash algo',
      (d) => ({ ...d, hash_algo: 'md5' }),
      /hash_algo: expected one of blake3, xxh3-64, sha256/,
    ],
    [
      'tensors not adding up to the file size',
      (d) => mapF64(d, 'nbytes', (n, i) => (i === 3 ? 20 : n)),
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
      (d) =>
        withNames(
          d,
          names(d).map((t) => (t === 'b' ? 'w' : t)),
        ),
      /expected a unique key \(tensor:shard_rank\); "w:0" is also entry/,
    ],
    ['missing entries', (d) => ({ ...d, entries: undefined }), /entries: expected an object/],
    [
      'manifest_version 1 (hex hashes, JSON number arrays)',
      (d) => ({ ...d, manifest_version: 1 }),
      /manifest_version: expected 2 \(this hotweights reads manifest_version 2 as JSON and 3 as binary; republish/,
    ],
    [
      'truncated base64 (a column cut short)',
      (d) => ({ ...d, entries: { ...d.entries, dims: d.entries.dims.slice(0, -4) } }),
      /entries\.dims: expected 32 base64 characters \(3 f64 dims \(sum of ndim\): 24 bytes\) \(got "28 characters"\)/,
    ],
    [
      'a column of the wrong byte length (i32 where f64 is stored)',
      (d) => ({ ...d, entries: { ...d.entries, nbytes: encI32(f64(d.entries.nbytes)) } }),
      /entries\.nbytes: expected 64 base64 characters .* \(got "32 characters"\)/,
    ],
    [
      'characters that are not base64',
      (d) => ({ ...d, entries: { ...d.entries, ndim: `!${d.entries.ndim.slice(1)}` } }),
      /entries\.ndim: expected valid base64 \(6 i32 shape ranks: 24 bytes\) \(got "23 bytes after decoding"\)/,
    ],
    [
      'a numeric column that is not a string',
      (d) => ({ ...d, entries: { ...d.entries, shard_rank: [0, 0, 0, 0, 0, 0] } }),
      /entries\.shard_rank: expected a base64 string of 6 u32 ranks \(got an array\)/,
    ],
    [
      'a fractional byte count',
      (d) => mapF64(d, 'nbytes', (n, i) => (i === 2 ? 0.5 : n)),
      /entries\.nbytes\[2\]: expected an integer >= 0 \(got 0\.5\)/,
    ],
    [
      'an ndim below -1',
      (d) => ({ ...d, entries: { ...d.entries, ndim: encI32([-1, -1, -1, 2, 1, -7]) } }),
      /entries\.ndim\[5\]: expected an integer >= -1 \(got -7\)/,
    ],
    [
      'a dtype index out of range',
      (d) => ({ ...d, entries: { ...d.entries, dtype: encI32([-1, -1, -1, 0, 1, 9]) } }),
      /entries\.dtype\[5\]: expected -1 or an index into dtypes \(0\.\.2\) \(got 9\)/,
    ],
    [
      'name lengths longer than the names',
      (d) => ({ ...d, entries: { ...d.entries, tensor: d.entries.tensor.slice(0, -3) } }),
      /entries\.tensor_length\[5\]: expected lengths adding up to the \d+ characters of entries\.tensor/,
    ],
    [
      'names longer than their lengths',
      (d) => ({ ...d, entries: { ...d.entries, tensor: `${d.entries.tensor}x` } }),
      /entries\.tensor: expected \d+ characters \(the sum of entries\.tensor_length\)/,
    ],
    [
      'an empty name',
      (d) =>
        withNames(
          d,
          names(d).map((t, i) => (i === 4 ? '' : t)),
        ),
      /entries\.tensor\[4\]: expected a non-empty string/,
    ],
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

  it('writes the record in the binary form, reads an older JSON record, and replaces it at the next commit', async () => {
    const state = join(dir, 'state-bin');
    const m = sample();
    const path = await recordCommittedManifest(state, m);
    expect(path.endsWith(join('org%2Fmodel', 'committed.manifest'))).toBe(true);
    expect(isBinaryManifest(readFileSync(path))).toBe(true);
    expect((await readCommittedManifest(state, 'org/model'))?.digest).toBe(m.digest);

    // A record an older hotweights wrote: committed.json in the JSON form.
    const legacyState = join(dir, 'state-legacy');
    const modelDir = join(legacyState, 'manifests', 'org%2Fmodel');
    mkdirSync(modelDir, { recursive: true });
    writeFileSync(join(modelDir, 'committed.json'), serializeManifest(m));
    const legacy = await readCommittedRecord(modelDir);
    expect(legacy?.path).toBe(join(modelDir, 'committed.json'));
    expect((await readCommittedManifest(legacyState, 'org/model'))?.digest).toBe(m.digest);
    // The next commit writes the binary record and removes the stale JSON one.
    const next = sample(undefined, 'v2');
    await recordCommittedManifest(legacyState, next);
    expect(existsSync(join(modelDir, 'committed.json'))).toBe(false);
    const rec = await readCommittedRecord(modelDir);
    expect(rec?.path).toBe(join(modelDir, 'committed.manifest'));
    expect(rec?.manifest.version).toBe('v2');
    // A corrupt binary record is an error naming it, not a silent fall back to nothing.
    writeFileSync(
      join(modelDir, 'committed.manifest'),
      Buffer.concat([BINARY_MANIFEST_MAGIC, Buffer.alloc(8)]),
    );
    await expect(readCommittedManifest(legacyState, 'org/model')).rejects.toThrow(/committed\.manifest/);
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
