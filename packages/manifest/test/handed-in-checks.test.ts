/**
 * The faster checks a caller can hand in (useEntryCheck, useKeyOrderCheck; `hotweights plan` hands
 * in the planner addon's): what each is asked, that its yes stands for the pass it replaces and for
 * nothing else, and that its no leaves the verdict to this package's own pass, so a bad manifest is
 * refused with the same named error as without it. The checks here are plain functions that answer
 * a fixed verdict and record what they were given; the manifests are real ones, built, serialised
 * and then damaged in their stored bytes.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManifestEntry } from '@hotweights/core';
import {
  buildManifest,
  type ColumnarManifest,
  type EntryCheck,
  type KeyOrderCheck,
  loadManifest,
  parseManifest,
  parseManifestBinary,
  serializeManifest,
  serializeManifestBinary,
  useEntryCheck,
  useKeyOrderCheck,
} from '@hotweights/manifest';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { withColumn, withHeader } from './binary-damage.js';
import { entryOf } from './entry-fixture.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-checks-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
afterEach(() => {
  useEntryCheck(undefined);
  useKeyOrderCheck(undefined);
});

const hash = (i: number) => `blake3:${i.toString(16).padStart(2, '0').repeat(32)}`;

function entry(
  tensor: string,
  file: string,
  kind: ManifestEntry['kind'],
  at: number,
  nbytes: number,
  dtype: string | null,
  shape: number[] | null,
  seed: number,
): ManifestEntry {
  return entryOf({ tensor, file, kind, at, nbytes, dtype, shape, hash: hash(seed) });
}

type Meta = Parameters<typeof buildManifest>[0];
const META: Meta = {
  version: 'v1',
  model_id: 'org/model',
  created_at: 'now',
  hash_algo: 'blake3',
  files: [
    { path: 'config.json', size: 12, kind: 'file' },
    { path: 'b.safetensors', size: 24, kind: 'safetensors' },
    { path: 'a.safetensors', size: 36, kind: 'safetensors' },
  ],
};

/**
 * Stored in this entry order (files by path): a.safetensors (header, w F32 [2, 3], s F32 scalar),
 * b.safetensors (header, x BF16 [2, 2]), config.json (a whole file).
 */
function sample(): ColumnarManifest {
  return buildManifest(META, [
    entry('config.json', 'config.json', 'file', 0, 12, null, null, 6),
    entry('b.safetensors', 'b.safetensors', 'header', 0, 16, null, null, 4),
    entry('x', 'b.safetensors', 'tensor', 16, 8, 'BF16', [2, 2], 5),
    entry('a.safetensors', 'a.safetensors', 'header', 0, 8, null, null, 1),
    entry('w', 'a.safetensors', 'tensor', 8, 24, 'F32', [2, 3], 2),
    entry('s', 'a.safetensors', 'tensor', 32, 4, 'F32', [], 3),
  ]);
}

const NAMES = ['a.safetensors', 'w', 's', 'b.safetensors', 'x', 'config.json'];
const BIN = serializeManifestBinary(sample());
const JSON_TEXT = serializeManifest(sample());

/** The binary manifest (or `bin`) with one stored column changed in place. */
const damaged = (name: string, change: (col: Buffer) => void, bin: Buffer = BIN) =>
  withColumn(bin, name, change);

// biome-ignore lint/suspicious/noExplicitAny: the tests damage the document's fields on purpose
type Doc = any;
/** The JSON manifest with its document changed. */
function withDoc(change: (d: Doc) => void): string {
  const doc = JSON.parse(JSON_TEXT);
  change(doc);
  return JSON.stringify(doc);
}
/** Base64 of little-endian f64 values, as the JSON form stores nbytes and dims. */
function f64(values: number[]): string {
  const b = Buffer.alloc(8 * values.length);
  for (const [i, v] of values.entries()) b.writeDoubleLE(v, 8 * i);
  return b.toString('base64');
}

type Verdict = 'accepted' | { name: string; code: string; message: string; details: unknown };
/** What loading gives: accepted, or the error's name, code, message and details. */
function verdict(load: () => unknown): Verdict {
  try {
    load();
    return 'accepted';
  } catch (err) {
    const e = err as Error & { code: string; details: unknown };
    return { name: e.name, code: e.code, message: e.message, details: e.details };
  }
}
const refused = (message: string) =>
  expect.objectContaining({ name: 'SchemaError', code: 'HW_SCHEMA', message });

const binary = (bytes: Buffer, options?: Parameters<typeof parseManifestBinary>[2]) => () =>
  parseManifestBinary(bytes, 'm.manifest', options);
const json = (text: string) => () => parseManifest(text, 'm.json');

const ARRAY_TYPES = [Uint32Array, Int32Array, Float64Array, Uint8Array];
/** A check answering `answer`, keeping a copy of what it was given (the arrays may be views). */
function entryCheck(answer: boolean) {
  const asked: { types: string[]; values: (number[] | number)[] }[] = [];
  const check: EntryCheck = (...args) => {
    asked.push({
      types: args.map((a) =>
        typeof a === 'number' ? 'number' : (ARRAY_TYPES.find((T) => a instanceof T)?.name ?? 'other'),
      ),
      values: args.map((a) => (typeof a === 'number' ? a : Array.from(a))),
    });
    return answer;
  };
  return { asked, check };
}

/** Entry faults that only the entry pass finds, each with the error it gives in the binary form. */
const ENTRY_FAULTS: [string, () => Buffer, string][] = [
  [
    'an empty name',
    () => damaged('tensor_offsets', (c) => c.writeUInt32LE(13, 8)),
    'entries.tensor[1]: expected a non-empty string (got "")',
  ],
  [
    'a fractional size',
    () => damaged('nbytes', (c) => c.writeDoubleLE(23.5, 8)),
    'entries.nbytes[1]: expected an integer >= 0 (got 23.5)',
  ],
  [
    'a negative size',
    () => damaged('nbytes', (c) => c.writeDoubleLE(-4, 16)),
    'entries.nbytes[2]: expected an integer >= 0 (got -4)',
  ],
  [
    'a size past 2^53',
    () => damaged('nbytes', (c) => c.writeDoubleLE(2 ** 60, 16)),
    `entries.nbytes[2]: expected an integer >= 0 (got ${2 ** 60})`,
  ],
  [
    'a dtype past the list',
    () => damaged('dtype', (c) => c.writeInt32LE(2, 16)),
    'entries.dtype[4]: expected -1 or an index into dtypes (0..1) (got 2)',
  ],
  [
    'a dtype below -1',
    () => damaged('dtype', (c) => c.writeInt32LE(-2, 4)),
    'entries.dtype[1]: expected -1 or an index into dtypes (0..1) (got -2)',
  ],
  [
    'a negative dimension',
    () => damaged('dims', (c) => c.writeDoubleLE(-2, 0)),
    'entries.dims[0]: expected an integer >= 0 (got -2)',
  ],
  [
    'a fractional dimension',
    () => damaged('dims', (c) => c.writeDoubleLE(2.5, 24)),
    'entries.dims[3]: expected an integer >= 0 (got 2.5)',
  ],
  [
    'a safetensors file that does not start with its header',
    () => damaged('kind', (c) => c.write('t', 0, 'latin1')),
    'entries.kind[0]: expected "h" (the first entry of safetensors file a.safetensors is its header) (got "t")',
  ],
  [
    'a second header',
    () => damaged('kind', (c) => c.write('h', 1, 'latin1')),
    'entries.kind[1]: expected "t" (only tensors follow a header) (got "h")',
  ],
  [
    'a whole file marked as a header',
    () => damaged('kind', (c) => c.write('h', 5, 'latin1')),
    'entries.kind[5]: expected "f" (config.json is a whole file) (got "h")',
  ],
  [
    'a file its entries do not cover, before the next file',
    () => withHeader(BIN, (h) => ((h.files as { size: number }[])[0]!.size = 44)),
    `entries (file "a.safetensors"): expected entries covering the file's 44 bytes (got "36 bytes covered before entry 3")`,
  ],
  [
    'the last file not covered',
    () => withHeader(BIN, (h) => ((h.files as { size: number }[])[2]!.size = 20)),
    `entries (file "config.json"): expected entries covering the file's 20 bytes (got "12 bytes covered before entry 6")`,
  ],
  [
    'an entry running past its file',
    () => damaged('nbytes', (c) => c.writeDoubleLE(28, 8)),
    `entries (file "a.safetensors"): expected entries covering the file's 36 bytes (got "40 bytes covered before entry 3")`,
  ],
];

describe('useEntryCheck: a faster check of the entry columns', () => {
  it('is asked about the stored columns of a loaded manifest, once per load, in both forms', async () => {
    const { asked, check } = entryCheck(true);
    useEntryCheck(check);
    const path = join(dir, 'asked.manifest');
    writeFileSync(path, BIN);
    const loaded = [
      parseManifestBinary(BIN, 'm.manifest'),
      parseManifest(JSON_TEXT, 'm.json'),
      await loadManifest(path, { map: true }),
    ];
    expect(loaded.map((m) => m.size)).toEqual([6, 6, 6]);
    let at = 0;
    const starts = [0, ...NAMES.map((n) => (at += n.length))];
    const expected = {
      types: [
        'Uint32Array',
        'Float64Array',
        'Int32Array',
        'Int32Array',
        'Float64Array',
        'Uint8Array',
        'Uint32Array',
        'Float64Array',
        'Uint8Array',
        'number',
      ],
      values: [
        starts,
        [8, 24, 4, 16, 8, 12], // nbytes
        [-1, 0, 0, -1, 1, -1], // dtype: indexes into [F32, BF16]
        [-1, 2, 0, -1, 2, -1], // ndim: a header has no shape, s is a scalar
        [2, 3, 2, 2], // dims
        [...Buffer.from('htthtf')], // kind, one byte per entry
        [3, 2, 1], // entries per file
        [36, 24, 12], // file sizes
        [0, 0, 1], // 1 for the whole file
        2, // dtypes
      ],
    };
    expect(asked).toEqual([expected, expected, expected]);
  });

  it('is not asked about columns that carry their files and offsets (buildManifest checks them here)', () => {
    const { asked, check } = entryCheck(true);
    useEntryCheck(check);
    expect(sample().size).toBe(6);
    // A yes would pass this entry; the pass here refuses it.
    expect(
      verdict(() =>
        buildManifest(META, [
          entry('config.json', 'config.json', 'header', 0, 12, null, null, 6),
          entry('b.safetensors', 'b.safetensors', 'header', 0, 24, null, null, 4),
          entry('a.safetensors', 'a.safetensors', 'header', 0, 36, null, null, 1),
        ]),
      ),
    ).toEqual(refused('entries.kind[2]: expected "f" (config.json is a whole file) (got "h")'));
    expect(asked).toEqual([]);
  });

  it('a yes on valid columns gives the manifest loaded without it', () => {
    const plain = parseManifestBinary(BIN, 'm.manifest');
    const { asked, check } = entryCheck(true);
    useEntryCheck(check);
    const checked = parseManifestBinary(BIN, 'm.manifest');
    expect(asked).toHaveLength(1);
    const entries = (m: ColumnarManifest) => Array.from({ length: m.size }, (_, i) => m.entry(i));
    expect(entries(checked)).toEqual(entries(plain));
    expect(checked.get('w:0')).toMatchObject({ file: 'a.safetensors', file_offset: 8, shape: [2, 3] });
    expect(checked.digest).toBe(plain.digest);
  });

  it('a no leaves the verdict to the pass here: a valid manifest loads, each fault is named as without it', () => {
    const { asked, check } = entryCheck(false);
    useEntryCheck(check);
    expect(parseManifestBinary(BIN, 'm.manifest').get('x:0')).toMatchObject({ file: 'b.safetensors' });
    expect(parseManifest(JSON_TEXT, 'm.json').get('x:0')).toMatchObject({ file_offset: 16 });
    for (const [what, damaged, message] of ENTRY_FAULTS) {
      const bytes = damaged();
      useEntryCheck(undefined);
      const without = verdict(binary(bytes));
      expect(without, what).toEqual(refused(`m.manifest: ${message}`));
      useEntryCheck(check);
      expect(verdict(binary(bytes)), what).toEqual(without);
    }
    expect(asked).toHaveLength(2 + ENTRY_FAULTS.length);
  });

  it('a no on a JSON manifest: each fault is named as without it', () => {
    const { asked, check } = entryCheck(false);
    const cases: [string, string, string][] = [
      [
        'a tensor marked as a header',
        withDoc((d) => (d.entries.kind = 'hthhtf')),
        'entries.kind[2]: expected "t" (only tensors follow a header) (got "h")',
      ],
      [
        'a fractional size',
        withDoc((d) => (d.entries.nbytes = f64([8, 24, 4, 16, 7.5, 12]))),
        'entries.nbytes[4]: expected an integer >= 0 (got 7.5)',
      ],
      [
        'a fractional dimension',
        withDoc((d) => (d.entries.dims = f64([2, 3, 2, 0.5]))),
        'entries.dims[3]: expected an integer >= 0 (got 0.5)',
      ],
      [
        'a file its entries do not cover',
        withDoc((d) => (d.files[1].size = 23)),
        `entries (file "b.safetensors"): expected entries covering the file's 23 bytes (got "24 bytes covered before entry 5")`,
      ],
    ];
    for (const [what, text, message] of cases) {
      useEntryCheck(undefined);
      const without = verdict(json(text));
      expect(without, what).toEqual(refused(`m.json: ${message}`));
      useEntryCheck(check);
      expect(verdict(json(text)), what).toEqual(without);
    }
    expect(asked).toHaveLength(cases.length);
  });

  it('a yes stands for the entry pass only: it is trusted there, and every other check still runs', () => {
    const { asked, check } = entryCheck(true);
    useEntryCheck(check);
    // Trusted: the pass it stands for does not run (so only a check that says yes for nothing
    // this pass refuses may be handed in; the planner's tests hold its addon to that).
    const secondHeader = parseManifestBinary(ENTRY_FAULTS[9]![1](), 'm.manifest');
    expect(secondHeader.kindOf(1)).toBe('header');
    const uncovered = parseManifestBinary(ENTRY_FAULTS[11]![1](), 'm.manifest');
    expect(uncovered.files[0]).toMatchObject({ path: 'a.safetensors', size: 44 });
    expect(asked).toHaveLength(2);
    // Not its business: the kind characters, unique keys and the stored digest.
    const cases: [string, () => unknown, string][] = [
      [
        'a kind character that is none of t, h, f',
        binary(damaged('kind', (c) => c.write('x', 2, 'latin1'))),
        'm.manifest: entries.kind: expected only the characters t, h, f',
      ],
      [
        'a key used twice',
        // x renamed w: the stored key order then puts the two w:0 side by side.
        binary(damaged('tensor', (c) => c.write('w', NAMES.slice(0, 4).join('').length, 'latin1'))),
        'm.manifest: entries.tensor[4]: expected a unique key (tensor:shard_rank); "w:0" is also entry 1 (got "w:0")',
      ],
      [
        'a key used twice (JSON: the key index)',
        json(withDoc((d) => (d.entries.tensor = d.entries.tensor.replace('x', 'w')))),
        'm.json: entries.tensor[4]: expected a unique key (tensor:shard_rank); "w:0" is also entry 1 (got "w:0")',
      ],
    ];
    for (const [what, load, message] of cases) {
      useEntryCheck(undefined);
      const without = verdict(load);
      expect(without, what).toEqual(refused(message));
      useEntryCheck(check);
      expect(verdict(load), what).toEqual(without);
    }
    // A hash changed after publish: the stored digest no longer matches, yes or not.
    const edited = damaged('hash', (c) => {
      c[40] = (c[40] as number) ^ 1;
    });
    const mismatch = verdict(binary(edited, { verifyDigest: true }));
    expect(mismatch).toEqual(expect.objectContaining({ name: 'SchemaError', code: 'HW_SCHEMA' }));
    expect((mismatch as { message: string }).message).toMatch(
      /^m\.manifest: digest: expected sha256:[0-9a-f]{64} \(the manifest was modified after it was made\)/,
    );
    useEntryCheck(undefined);
    expect(verdict(binary(edited, { verifyDigest: true }))).toEqual(mismatch);
  });
});

/** A check answering `answer`, keeping a copy of what it was given. */
function keyOrderCheck(answer: boolean) {
  const asked: number[][][] = [];
  const check: KeyOrderCheck = (...args) => {
    asked.push(args.map((a) => Array.from(a)));
    return answer;
  };
  return { asked, check };
}

describe('useKeyOrderCheck: a faster check of a stored key order', () => {
  /** Key order of the sample: names in code unit order, all at rank 0. */
  const ORDER = [...NAMES.keys()].sort((a, b) => (NAMES[a]! < NAMES[b]! ? -1 : 1));

  /** The sample with two neighbours of its stored key order swapped. */
  const swapped = () =>
    damaged('key_order', (c) => {
      c.writeUInt32LE(ORDER[4]!, 12);
      c.writeUInt32LE(ORDER[3]!, 16);
    });

  it('is asked about the ASCII names, ranks and stored order of a binary manifest, when keys are first checked', () => {
    const { asked, check } = keyOrderCheck(true);
    useKeyOrderCheck(check);
    let at = 0;
    const expected = [
      [...Buffer.from(NAMES.join(''), 'latin1')],
      [0, ...NAMES.map((n) => (at += n.length))],
      [0, 0, 0, 0, 0, 0],
      ORDER,
    ];
    expect(ORDER).toEqual([0, 3, 5, 2, 1, 4]);
    expect(parseManifestBinary(BIN, 'm.manifest').size).toBe(6);
    expect(asked).toEqual([expected]);
    // A lazy index checks its keys on the first lookup, not at load.
    const lazy = parseManifestBinary(BIN, 'm.manifest', { lazyIndex: true });
    expect(asked).toHaveLength(1);
    expect(lazy.get('s:0')?.nbytes).toBe(4);
    expect(asked).toEqual([expected, expected]);
  });

  it('is not asked where there is no stored order (JSON) or no ASCII bytes of the names', () => {
    const { asked, check } = keyOrderCheck(false);
    useKeyOrderCheck(check);
    expect(parseManifest(JSON_TEXT, 'm.json').get('w:0')?.nbytes).toBe(24);
    const wide = buildManifest({ ...META, files: [{ path: 'é.bin', size: 4, kind: 'file' }] }, [
      entry('é.bin', 'é.bin', 'file', 0, 4, null, null, 9),
    ]);
    expect(parseManifestBinary(serializeManifestBinary(wide), 'm.manifest').get('é.bin:0')?.nbytes).toBe(4);
    expect(asked).toEqual([]);
  });

  it('a no leaves the verdict to the check here: a valid order loads, each bad one is named as without it', () => {
    const { asked, check } = keyOrderCheck(false);
    useKeyOrderCheck(check);
    expect(parseManifestBinary(BIN, 'm.manifest').get('config.json:0')?.kind).toBe('file');
    const cases: [string, Buffer, string][] = [
      [
        'two keys swapped',
        swapped(),
        'entries.key_order[4]: expected entries in ascending key order (entry 1 sorts after entry 2) (got 2)',
      ],
      [
        'an entry listed twice',
        damaged('key_order', (c) => c.writeUInt32LE(ORDER[0]!, 4)),
        'entries.key_order[1]: expected each entry index 0..5 once (got 0)',
      ],
      [
        'an index past the entries',
        damaged('key_order', (c) => c.writeUInt32LE(6, 20)),
        'entries.key_order[5]: expected each entry index 0..5 once (got 6)',
      ],
    ];
    for (const [what, bytes, message] of cases) {
      useKeyOrderCheck(undefined);
      const without = verdict(binary(bytes));
      expect(without, what).toEqual(refused(`m.manifest: ${message}`));
      useKeyOrderCheck(check);
      expect(verdict(binary(bytes)), what).toEqual(without);
    }
    expect(asked).toHaveLength(1 + cases.length);
  });

  it('a yes stands for the key order only: it is trusted there, and the entries are still checked', () => {
    const { asked, check } = keyOrderCheck(true);
    useKeyOrderCheck(check);
    // Trusted: the order is not checked here (the planner's tests hold its addon to yes only for
    // an ascending permutation).
    expect(parseManifestBinary(swapped(), 'm.manifest').size).toBe(6);
    const [, fault, message] = ENTRY_FAULTS[1]!;
    expect(verdict(binary(fault()))).toEqual(refused(`m.manifest: ${message}`));
    expect(asked).toHaveLength(1);
  });
});
