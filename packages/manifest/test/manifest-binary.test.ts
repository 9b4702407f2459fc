import { mkdtempSync, renameSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type ManifestEntry, SchemaError } from '@hotweights/core';
import {
  BINARY_MANIFEST_MAGIC,
  buildManifest,
  checkManifestFileUnchanged,
  isBinaryManifest,
  loadManifest,
  parseManifest,
  parseManifestBinary,
  serializeManifest,
  serializeManifestBinary,
} from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';
import { binaryHeader, withColumn, withHeader } from './binary-damage.js';
import { entryOf, fakeHash, WHOLE_FILES, wholeFileEntries } from './entry-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-bin-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const h = fakeHash;

function tensor(name: string, offset: number, nbytes: number, hash: string, shape: number[]): ManifestEntry {
  return {
    key: `${name}:0`,
    tensor: name,
    shard_rank: 0,
    kind: 'tensor',
    file: 'model.safetensors',
    file_offset: offset,
    nbytes,
    dtype: 'F32',
    shape,
    hash: h(hash),
  };
}

/** A small manifest: a safetensors file (header + 3 tensors, one named in UTF-8), two whole files. */
function sample(names: [string, string, string] = ['w', 'b', 'é🙂 x']) {
  return buildManifest(
    {
      version: 'v1',
      model_id: 'org/model',
      created_at: '2026-01-01T00:00:00.000Z',
      checkpoint_root: '/ckpt',
      hash_algo: 'blake3',
      files: [{ path: 'model.safetensors', size: 100, kind: 'safetensors' }, ...WHOLE_FILES],
    },
    [
      entryOf({
        tensor: 'model.safetensors',
        file: 'model.safetensors',
        kind: 'header',
        at: 0,
        nbytes: 64,
        dtype: null,
        shape: null,
        hash: h('a'),
      }),
      tensor(names[0], 64, 24, 'b', [2, 3]),
      tensor(names[1], 88, 8, 'c', [2]),
      tensor(names[2], 96, 4, 'd', []),
      ...wholeFileEntries(),
    ],
  );
}

describe('binary manifest (manifest_version 3)', () => {
  it('round-trips every entry and keeps the JSON form digest; loadManifest reads both forms', async () => {
    const m = sample();
    const bin = serializeManifestBinary(m);
    expect(isBinaryManifest(bin)).toBe(true);
    expect(bin.subarray(0, 8).equals(BINARY_MANIFEST_MAGIC)).toBe(true);
    expect(binaryHeader(bin)).toMatchObject({ schema: 'hotweights.manifest', manifest_version: 3, count: 6 });
    const back = parseManifestBinary(bin, 'm.bin', { verifyDigest: true });
    // file and file_offset are implied by the per-file counts: built on first read, the same values.
    const lazy = parseManifestBinary(bin, 'm.bin');
    expect(Object.getOwnPropertyDescriptor(lazy.columns, 'file')?.get).toBeDefined();
    expect([...lazy.columns.file_offset]).toEqual([...m.columns.file_offset]);
    expect([...lazy.columns.file]).toEqual([...m.columns.file]);
    expect(lazy.columns.file).toBe(lazy.columns.file);
    expect(back.digest).toBe(m.digest);
    expect(back.size).toBe(m.size);
    for (let i = 0; i < m.size; i++) expect(back.entry(i)).toEqual(m.entry(i));
    expect(back.get('é🙂 x:0')?.file_offset).toBe(96);
    expect(back.get('absent:0')).toBeUndefined();

    const binPath = join(dir, 'm.manifest');
    const jsonPath = join(dir, 'm.json');
    writeFileSync(binPath, bin);
    writeFileSync(jsonPath, serializeManifest(m));
    const a = await loadManifest(binPath, { verifyDigest: true });
    const b = await loadManifest(jsonPath, { verifyDigest: true });
    expect(a.digest).toBe(b.digest);
    expect([...Array(a.size).keys()].map((i) => a.entry(i))).toEqual(
      [...Array(b.size).keys()].map((i) => b.entry(i)),
    );
    // A binary manifest re-encodes to the same bytes; its JSON form parses to the same content.
    expect(serializeManifestBinary(a).equals(bin)).toBe(true);
    expect(parseManifest(serializeManifest(a), 'again.json').digest).toBe(m.digest);
  });

  it('finds entries by key and merge-ready key order, for ASCII and non-ASCII names alike', () => {
    for (const names of [
      ['w', 'b', 'c'],
      ['w', 'b', 'é🙂 x'],
    ] as [string, string, string][]) {
      const m = parseManifestBinary(serializeManifestBinary(sample(names)), 'm.bin');
      const order = m.keyOrder() as Uint32Array;
      const keys = [...order].map((i) => m.key(i));
      expect(keys).toEqual([...keys].sort());
      for (let i = 0; i < m.size; i++) expect(m.indexOf(m.key(i))).toBe(i);
    }
  });

  it('detects a duplicate key through the stored order (at load, or at first lookup with lazyIndex)', () => {
    // 'b' and 'c' are neighbours in key order: make 'c' a second 'b' (the order stays sorted).
    const bin = withColumn(serializeManifestBinary(sample(['w', 'b', 'c'])), 'tensor', (col) => {
      col[col.lastIndexOf('c')] = 'b'.charCodeAt(0);
    });
    expect(() => parseManifestBinary(bin, 'dup.bin')).toThrowError(
      /dup\.bin: entries\.tensor\[5\]: expected a unique key \(tensor:shard_rank\); "b:0" is also entry 4/,
    );
    const lazy = parseManifestBinary(bin, 'dup.bin', { lazyIndex: true });
    expect(() => lazy.indexOf('w:0')).toThrowError(/expected a unique key/);
  });

  const good = () => serializeManifestBinary(sample());
  const cases: [string, () => Buffer, RegExp][] = [
    [
      'bad magic',
      () => Buffer.concat([Buffer.from('NOTMAGIC'), good().subarray(8)]),
      /\(magic\): expected a binary hotweights manifest/,
    ],
    [
      'a truncated preamble',
      () => good().subarray(0, 12),
      /\(header\): expected at least 16 bytes .*truncated/,
    ],
    [
      'a truncated file (last column cut short)',
      () => good().subarray(0, good().length - 5),
      /columns\.key_order: expected bytes \d+\.\.\d+ inside the file's \d+ bytes \(got "a column past the end \(truncated file\)"\)/,
    ],
    [
      'trailing bytes after the last column',
      () => Buffer.concat([good(), Buffer.alloc(8)]),
      /\(file length\): expected \d+ bytes \(the end of the last column\)/,
    ],
    [
      'a header length past the end',
      () => {
        const b = good();
        b.writeUInt32LE(b.length, 8);
        return b;
      },
      /\(header length\): expected a multiple of 8 that fits .*truncated file/,
    ],
    [
      'a header that is not JSON',
      () => {
        const b = good();
        b[16] = 0x78;
        return b;
      },
      /\(header\): expected valid JSON/,
    ],
    [
      'a newer manifest_version',
      () =>
        withHeader(good(), (hd) => {
          hd.manifest_version = 4;
        }),
      /manifest_version: expected 3/,
    ],
    [
      'a column of the wrong byte length',
      () =>
        withHeader(good(), (hd) => {
          hd.columns.nbytes[1] = 40;
        }),
      /columns\.nbytes\[1\]: expected 48 bytes \(nbytes: 6 values of 8 bytes\) \(got 40\)/,
    ],
    [
      'a misaligned column',
      () =>
        withHeader(good(), (hd) => {
          hd.columns.dims[0] += 4;
        }),
      /columns\.dims\[0\]: expected an offset that is a multiple of 8/,
    ],
    [
      'overlapping columns',
      () =>
        withHeader(good(), (hd) => {
          hd.columns.kind[0] = hd.columns.shard_rank[0];
        }),
      /columns\.kind\[0\]: expected a column not overlapping columns\.shard_rank/,
    ],
    [
      'a missing column',
      () =>
        withHeader(good(), (hd) => {
          delete hd.columns.hash;
        }),
      /columns\.hash: expected an array/,
    ],
    [
      'name offsets past the names',
      () =>
        withColumn(good(), 'tensor_offsets', (col) => {
          col.writeUInt32LE(9999, col.length - 4);
        }),
      /entries\.tensor_offsets\[6\]: expected an offset >= the previous one|entries\.tensor_offsets\[6\]: expected the length of entries\.tensor/,
    ],
    [
      'name offsets going backwards',
      () =>
        withColumn(good(), 'tensor_offsets', (col) => {
          col.writeUInt32LE(0, 8);
        }),
      /entries\.tensor_offsets\[2\]: expected an offset >= the previous one \(11\) \(got 0\)/,
    ],
    [
      'a name that is not UTF-8',
      () =>
        withColumn(good(), 'tensor', (col) => {
          col[col.length - 1] = 0xff;
        }),
      /entries\.tensor\[\d\]: expected a valid UTF-8 name/,
    ],
    [
      'a fractional byte count',
      () =>
        withColumn(good(), 'nbytes', (col) => {
          col.writeDoubleLE(23.5, 8);
        }),
      /entries\.nbytes\[1\]: expected an integer >= 0 \(got 23\.5\)/,
    ],
    [
      'a dtype index out of range',
      () =>
        withColumn(good(), 'dtype', (col) => {
          col.writeInt32LE(7, 4);
        }),
      /entries\.dtype\[1\]: expected -1 or an index into dtypes/,
    ],
    [
      'an ndim below -1',
      () =>
        withColumn(good(), 'ndim', (col) => {
          col.writeInt32LE(-2, 4);
        }),
      /entries\.ndim\[1\]: expected an integer >= -1/,
    ],
    [
      'a kind that is not t, h, f',
      () =>
        withColumn(good(), 'kind', (col) => {
          col[1] = 0x78;
        }),
      /entries\.kind: expected only the characters t, h, f/,
    ],
    [
      'a safetensors file whose first entry is a tensor',
      () =>
        withColumn(good(), 'kind', (col) => {
          col[2] = 0x74;
        }),
      /entries\.kind\[2\]: expected "h" \(the first entry of safetensors file model\.safetensors is its header\)/,
    ],
    [
      'a tensor where a whole file starts',
      () =>
        withColumn(good(), 'kind', (col) => {
          col[1] = 0x74;
        }),
      /entries\.kind\[1\]: expected "f" \(empty file is a whole file\)/,
    ],
    [
      'a path escaping the root',
      () =>
        withHeader(good(), (hd) => {
          hd.files[1].path = '../etc';
        }),
      /files\[1\]\.path: expected a relative path inside the checkpoint root/,
    ],
    [
      'entry counts not adding up',
      () =>
        withHeader(good(), (hd) => {
          hd.files[0].entries = 3;
        }),
      /files\[\]\.entries: expected entry counts adding up to count/,
    ],
    [
      'tensors not covering the file',
      () =>
        withHeader(good(), (hd) => {
          hd.files[0].size = 101;
        }),
      /entries \(file "config\.json"\): expected entries covering the file's 101 bytes/,
    ],
    [
      'a key order that is not sorted',
      () =>
        withColumn(good(), 'key_order', (col) => {
          const a = col.readUInt32LE(0);
          col.writeUInt32LE(col.readUInt32LE(4), 0);
          col.writeUInt32LE(a, 4);
        }),
      /entries\.key_order\[1\]: expected entries in ascending key order/,
    ],
    [
      'a key order that is not a permutation',
      () =>
        withColumn(good(), 'key_order', (col) => {
          col.writeUInt32LE(col.readUInt32LE(0), 4);
        }),
      /entries\.key_order\[1\]: expected each entry index 0\.\.5 once/,
    ],
    [
      'a dtype index just past the dtypes',
      () =>
        withColumn(good(), 'dtype', (col) => {
          col.writeInt32LE(1, 12);
        }),
      /entries\.dtype\[3\]: expected -1 or an index into dtypes \(0\.\.0\) \(got 1\)/,
    ],
    [
      'a dtype index below -1',
      () =>
        withColumn(good(), 'dtype', (col) => {
          col.writeInt32LE(-2, 12);
        }),
      /entries\.dtype\[3\]: expected -1 or an index into dtypes \(0\.\.0\) \(got -2\)/,
    ],
    [
      'a first name offset other than 0',
      () =>
        withColumn(good(), 'tensor_offsets', (col) => {
          col.writeUInt32LE(1, 0);
        }),
      /entries\.tensor_offsets\[0\]: expected 0 \(got 1\)/,
    ],
    [
      'name offsets going backwards further on',
      () =>
        withColumn(good(), 'tensor_offsets', (col) => {
          col.writeUInt32LE(15, 12);
        }),
      /entries\.tensor_offsets\[3\]: expected an offset >= the previous one \(21\) \(got 15\)/,
    ],
    [
      'a header length that is not a multiple of 8',
      () => {
        const b = good();
        b.writeUInt32LE(13, 8);
        return b;
      },
      /\(header length\): expected a multiple of 8 that fits in the file's \d+ bytes \(got "13"\)$/,
    ],
    [
      'a file that ends with its header',
      () => good().subarray(0, 16 + good().readUInt32LE(8)),
      /columns\.tensor_offsets: expected bytes \d+\.\.\d+ inside the file's \d+ bytes/,
    ],
    [
      'nothing but the preamble',
      () => good().subarray(0, 16),
      /\(header length\): expected a multiple of 8 that fits in the file's 16 bytes \(got "\d+ \(truncated file\)"\)/,
    ],
    [
      'a header that is not an object',
      () => {
        const b = good();
        b.fill(0x20, 16, 16 + b.readUInt32LE(8));
        b.write('[1]', 16);
        return b;
      },
      // Not wrapped as invalid JSON (whose message would carry this one after its own field).
      /^[^(]*: \(header\): expected an object/,
    ],
    [
      'another schema',
      () =>
        withHeader(good(), (hd) => {
          hd.schema = 'hotweights.plan';
        }),
      /: schema: expected "hotweights\.manifest" \(got "hotweights\.plan"\)/,
    ],
    [
      'a negative count',
      () =>
        withHeader(good(), (hd) => {
          hd.count = -1;
        }),
      /: count: expected an integer >= 0/,
    ],
    [
      'a dims count that is not a number',
      () =>
        withHeader(good(), (hd) => {
          hd.dims = 'x';
        }),
      /: dims: expected an integer >= 0/,
    ],
    [
      'columns that are not an object',
      () =>
        withHeader(good(), (hd) => {
          hd.columns = 5;
        }),
      /: columns: expected an object/,
    ],
    [
      'a column starting inside the header',
      () =>
        withHeader(good(), (hd) => {
          hd.columns.tensor_offsets[0] = 16;
        }),
      /columns\.tensor_offsets\[0\]: expected an offset that is a multiple of 8, after the header \(>= \d+\) \(got 16\)/,
    ],
    [
      'a column given by three numbers',
      () =>
        withHeader(good(), (hd) => {
          hd.columns.nbytes.push(0);
        }),
      /columns\.nbytes: expected \[offset, bytes\]/,
    ],
    [
      'a column offset that is not a number',
      () =>
        withHeader(good(), (hd) => {
          hd.columns.nbytes[0] = 'x';
        }),
      /columns\.nbytes\[0\]: expected an integer >= 0/,
    ],
    [
      'a column length that is not a number',
      () =>
        withHeader(good(), (hd) => {
          hd.columns.nbytes[1] = 'x';
        }),
      /columns\.nbytes\[1\]: expected an integer >= 0/,
    ],
    [
      'dimensions not adding up to dims',
      () =>
        withColumn(good(), 'ndim', (col) => {
          col.writeInt32LE(col.readInt32LE(12) - 1, 12);
        }),
      /: dims: expected \d+ \(the sum of entries\.ndim\) \(got \d+\)/,
    ],
  ];
  for (const [name, make, message] of cases) {
    it(`rejects ${name} with file, field and expectation`, async () => {
      const bytes = make();
      let err: unknown;
      try {
        parseManifestBinary(bytes, 'bad.manifest');
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(SchemaError);
      expect((err as Error).message).toMatch(/^bad\.manifest: /);
      expect((err as Error).message).toMatch(message);
      // loadManifest gives the same error for the same bytes on disk (when they start with the magic).
      if (isBinaryManifest(bytes)) {
        const path = join(dir, `${name.replace(/\W+/g, '-')}.manifest`);
        writeFileSync(path, bytes);
        await expect(loadManifest(path)).rejects.toThrowError(message);
      }
    });
  }

  it('reads columns stored in another order, and names sizes exactly when a file is cut or grown', () => {
    // shard_rank and dtype have the same length: swap where they are stored.
    const b = good();
    const hd = binaryHeader(b);
    const [s, len] = hd.columns.shard_rank as [number, number];
    const [d] = hd.columns.dtype as [number, number];
    const swapped = withHeader(b, (x) => {
      x.columns.shard_rank[0] = d;
      x.columns.dtype[0] = s;
    });
    const shard = Buffer.from(b.subarray(s, s + len));
    b.copy(swapped, s, d, d + len);
    shard.copy(swapped, d);
    const back = parseManifestBinary(swapped, 'swapped.bin', { verifyDigest: true });
    const m = sample();
    for (let i = 0; i < m.size; i++) expect(back.entry(i)).toEqual(m.entry(i));
    // Bytes at an odd address (a slice of a larger buffer): the columns are copied, not viewed.
    const odd = Buffer.concat([Buffer.alloc(1), b]).subarray(1);
    const fromOdd = parseManifestBinary(odd, 'odd.bin', { verifyDigest: true });
    for (let i = 0; i < m.size; i++) expect(fromOdd.entry(i)).toEqual(m.entry(i));

    const [ko, kl] = hd.columns.key_order as [number, number];
    expect(() => parseManifestBinary(b.subarray(0, b.length - 5), 'cut.bin')).toThrowError(
      `cut.bin: columns.key_order: expected bytes ${ko}..${ko + kl} inside the file's ${b.length - 5} bytes`,
    );
    expect(() => parseManifestBinary(Buffer.concat([b, Buffer.alloc(8)]), 'grown.bin')).toThrowError(
      `grown.bin: (file length): expected ${b.length} bytes (the end of the last column) (got "${b.length + 8} bytes")`,
    );
    const notUtf8 = withColumn(b, 'tensor', (col) => {
      col[col.length - 1] = 0xff;
    });
    expect(() => parseManifestBinary(notUtf8, 'utf.bin')).toThrowError(
      /utf\.bin: entries\.tensor\[\d\]: expected a valid UTF-8 name \(got "invalid UTF-8 bytes"\)/,
    );
  });

  it('loads a manifest without a stored digest unless the digest is to be verified', () => {
    const bare = withHeader(good(), (hd) => {
      delete hd.digest;
    });
    expect(parseManifestBinary(bare, 'bare.bin').size).toBe(sample().size);
    expect(() => parseManifestBinary(bare, 'bare.bin', { verifyDigest: true })).toThrowError(
      /bare\.bin: digest: expected a stored digest/,
    );
  });

  it('names a changed column in the digest check', () => {
    const bin = withColumn(good(), 'hash', (col) => {
      col[0] = (col[0] as number) ^ 1;
    });
    expect(parseManifestBinary(bin, 't.manifest').digest).toBe(sample().digest);
    expect(() => parseManifestBinary(bin, 't.manifest', { verifyDigest: true })).toThrowError(
      /t\.manifest: digest: expected sha256:[0-9a-f]{64} \(the manifest was modified after it was made\)/,
    );
  });
});

describe('loadManifest with map: true', () => {
  const entriesOf = (m: Awaited<ReturnType<typeof loadManifest>>) =>
    Array.from({ length: m.size }, (_, i) => m.entry(i));

  it('maps a binary manifest: the same manifest as a read, checked unchanged until the file changes', async () => {
    const m = sample();
    const path = join(dir, 'mapped.manifest');
    writeFileSync(path, serializeManifestBinary(m));
    const read = await loadManifest(path);
    const mapped = await loadManifest(path, { map: true, lazyIndex: true });
    expect(mapped.digest).toBe(read.digest);
    expect(entriesOf(mapped)).toEqual(entriesOf(read));
    expect(mapped.indexOf('b:0')).toBe(read.indexOf('b:0'));
    expect(() => checkManifestFileUnchanged(mapped)).not.toThrow();
    // A read (not mapped) manifest has nothing to check.
    expect(() => checkManifestFileUnchanged(read)).not.toThrow();

    // Touched in place (same bytes, new times): reported, naming the file.
    utimesSync(path, new Date(2001, 1, 1), new Date(2001, 1, 1));
    expect(() => checkManifestFileUnchanged(mapped)).toThrow(
      /mapped\.manifest was modified while it was in use/,
    );

    // Replaced by rename (what publish does): reported; the mapping itself stays readable.
    const again = await loadManifest(path, { map: true });
    const other = join(dir, 'mapped.manifest.tmp');
    writeFileSync(other, serializeManifestBinary(m));
    renameSync(other, path);
    expect(() => checkManifestFileUnchanged(again)).toThrow(/was replaced while it was in use/);
    expect(entriesOf(again)).toEqual(entriesOf(read));

    // Removed: reported too.
    rmSync(path);
    expect(() => checkManifestFileUnchanged(again)).toThrow(/can no longer be read \(ENOENT\)/);
  });

  it('reads JSON manifests as before, and reports a missing file as a read would', async () => {
    const m = sample();
    const path = join(dir, 'mapped.json');
    writeFileSync(path, serializeManifest(m));
    const mapped = await loadManifest(path, { map: true });
    expect(entriesOf(mapped)).toEqual(entriesOf(m));
    expect(() => checkManifestFileUnchanged(mapped)).not.toThrow();
    await expect(loadManifest(join(dir, 'absent.manifest'), { map: true })).rejects.toThrow(
      /cannot read manifest .*absent\.manifest: ENOENT/,
    );
  });

  it('validates a mapped file as a read one: a corrupt column is refused', async () => {
    const bin = serializeManifestBinary(sample());
    const bad = withColumn(bin, 'nbytes', (col) => col.writeDoubleLE(-1, 8));
    const path = join(dir, 'bad-mapped.manifest');
    writeFileSync(path, bad);
    const readErr = await loadManifest(path).catch((e: unknown) => e);
    const mapErr = await loadManifest(path, { map: true }).catch((e: unknown) => e);
    expect(readErr).toBeInstanceOf(SchemaError);
    expect((mapErr as Error).message).toBe((readErr as Error).message);
  });
});
