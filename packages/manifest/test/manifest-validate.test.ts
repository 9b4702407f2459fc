/**
 * What the manifest checks refuse, field by field, with the message a user sees: entries that do
 * not fit their files (built from entries, as publish does), and manifest documents whose
 * metadata or digest is damaged (loaded from JSON).
 */
import type { ManifestEntry } from '@hotweights/core';
import { buildManifest, parseManifest, serializeManifest } from '@hotweights/manifest';
import { describe, expect, it } from 'vitest';
import { entryOf } from './entry-fixture.js';

const h = (c: string) => `blake3:${c.repeat(64)}`;
type Meta = Parameters<typeof buildManifest>[0];

function entry(
  tensor: string,
  file: string,
  kind: ManifestEntry['kind'],
  at: number,
  nbytes: number,
  shape: number[] | null,
): ManifestEntry {
  return entryOf({ tensor, file, kind, at, nbytes, dtype: shape ? 'F32' : null, shape, hash: h('a') });
}

/** model.safetensors (a header, w [2, 3], b [3]) and config.json; in file order config.json comes first. */
function parts(): { meta: Meta; entries: ManifestEntry[] } {
  return {
    meta: {
      version: 'v1',
      model_id: 'org/model',
      created_at: '2026-01-01T00:00:00.000Z',
      checkpoint_root: '/ckpt',
      hash_algo: 'blake3',
      files: [
        { path: 'model.safetensors', size: 100, kind: 'safetensors' },
        { path: 'config.json', size: 10, kind: 'file' },
      ],
    },
    entries: [
      entry('model.safetensors', 'model.safetensors', 'header', 0, 64, null),
      entry('w', 'model.safetensors', 'tensor', 64, 24, [2, 3]),
      entry('b', 'model.safetensors', 'tensor', 88, 12, [3]),
      entry('config.json', 'config.json', 'file', 0, 10, null),
    ],
  };
}

const named = (p: { entries: ManifestEntry[] }, tensor: string) =>
  p.entries.find((e) => e.tensor === tensor) as { -readonly [K in keyof ManifestEntry]: ManifestEntry[K] };

/** The message building the edited manifest fails with. */
function buildError(edit: (p: ReturnType<typeof parts>) => void): string {
  const p = parts();
  edit(p);
  try {
    buildManifest(p.meta, p.entries);
  } catch (err) {
    expect(err, (err as Error).message).toMatchObject({ name: 'SchemaError' });
    return (err as Error).message;
  }
  throw new Error('expected the manifest to be refused');
}

// biome-ignore lint/suspicious/noExplicitAny: the tests break the document's fields on purpose
type Doc = any;

/** The message loading the edited JSON form fails with. */
function loadError(edit: (doc: Doc) => void): string {
  const p = parts();
  const doc = JSON.parse(serializeManifest(buildManifest(p.meta, p.entries)));
  edit(doc);
  try {
    parseManifest(JSON.stringify(doc), 'm.json');
  } catch (err) {
    expect(err, (err as Error).message).toMatchObject({ name: 'SchemaError' });
    return (err as Error).message;
  }
  throw new Error('expected the manifest to be refused');
}

describe('manifest entries that do not fit their files', () => {
  const BUILD: [string, (p: ReturnType<typeof parts>) => void, string][] = [
    [
      'an empty tensor name',
      (p) => (named(p, 'w').tensor = ''),
      'entries.tensor[2]: expected a non-empty string (got "")',
    ],
    [
      'a gap between entries',
      (p) => (named(p, 'w').file_offset = 65),
      'entries.file_offset[2]: expected 64 (entries of model.safetensors must be contiguous, in offset order) (got 65)',
    ],
    [
      'a whole file not read from its start',
      (p) => (named(p, 'config.json').file_offset = 2),
      'entries.file_offset[0]: expected 0 (entries of config.json must be contiguous, in offset order) (got 2)',
    ],
    [
      'a header not at the start of its file',
      (p) => (named(p, 'model.safetensors').file_offset = 4),
      'entries.file_offset[1]: expected 0 (entries of model.safetensors must be contiguous, in offset order) (got 4)',
    ],
    [
      'a negative offset',
      (p) => (named(p, 'w').file_offset = -1),
      'entries.file_offset[1]: expected an integer >= 0 (got -1)',
    ],
    [
      'a fractional size',
      (p) => (named(p, 'w').nbytes = 24.5),
      'entries.nbytes[2]: expected an integer >= 0 (got 24.5)',
    ],
    [
      'a negative size',
      (p) => (named(p, 'b').nbytes = -1),
      'entries.nbytes[3]: expected an integer >= 0 (got -1)',
    ],
    [
      'a size past 2^53',
      (p) => (named(p, 'b').nbytes = 2 ** 60),
      `entries.nbytes[3]: expected an integer >= 0 (got ${2 ** 60})`,
    ],
    [
      'a negative dimension',
      (p) => (named(p, 'b').shape = [3, -1]),
      'entries.dims[3]: expected an integer >= 0 (got -1)',
    ],
    [
      'a fractional dimension',
      (p) => (named(p, 'w').shape = [2, 1.5]),
      'entries.dims[1]: expected an integer >= 0 (got 1.5)',
    ],
    [
      'a dimension past 2^53',
      (p) => (named(p, 'w').shape = [2 ** 60, 3]),
      `entries.dims[0]: expected an integer >= 0 (got ${2 ** 60})`,
    ],
    [
      'a tensor in a whole file',
      (p) => (named(p, 'config.json').kind = 'tensor'),
      'entries.kind[0]: expected "f" (config.json is a whole file) (got "t")',
    ],
    [
      'a safetensors file that does not start with its header',
      (p) => (named(p, 'model.safetensors').kind = 'tensor'),
      'entries.kind[1]: expected "h" (the first entry of safetensors file model.safetensors is its header) (got "t")',
    ],
    [
      'a second header',
      (p) => (named(p, 'w').kind = 'header'),
      'entries.kind[2]: expected "t" (only tensors follow a header) (got "h")',
    ],
    [
      'a file its entries do not cover, before the next file',
      (p) => ((p.meta.files[1] as { size: number }).size = 12),
      `entries (file "config.json"): expected entries covering the file's 12 bytes (got "10 bytes covered before entry 1")`,
    ],
    [
      'the last file not covered',
      (p) => ((p.meta.files[0] as { size: number }).size = 101),
      `entries (file "model.safetensors"): expected entries covering the file's 101 bytes (got "100 bytes covered before entry 4")`,
    ],
    [
      'the only file not covered',
      (p) => {
        p.meta = { ...p.meta, files: [{ path: 'config.json', size: 12, kind: 'file' }] };
        p.entries = [named(p, 'config.json')];
      },
      `entries (file "config.json"): expected entries covering the file's 12 bytes (got "10 bytes covered before entry 1")`,
    ],
    [
      'a file without entries',
      (p) => {
        p.meta = { ...p.meta, files: [...p.meta.files, { path: 'extra.bin', size: 0, kind: 'file' }] };
      },
      'files[1]: expected at least one entry for "extra.bin"',
    ],
    [
      'an unknown hash algorithm',
      (p) => {
        p.meta = { ...p.meta, hash_algo: 'md5' };
        for (const e of p.entries) (e as { hash: string }).hash = 'md5:';
      },
      'hash_algo: expected one of ',
    ],
    [
      'a key used twice',
      (p) => {
        const b = named(p, 'b');
        b.tensor = 'w';
        b.key = 'w:0';
      },
      'expected a unique key',
    ],
  ];

  it.each(BUILD)('refuses %s, naming the entry', (_what, edit, message) => {
    expect(buildError(edit)).toContain(message);
  });

  it('an empty manifest (no files) is valid', () => {
    expect(buildManifest({ ...parts().meta, files: [] }, []).size).toBe(0);
  });
});

describe('manifest documents with damaged metadata', () => {
  const DIGEST = `sha256:${'0'.repeat(64)}`;
  const LOAD: [string, (d: Doc) => void, string][] = [
    ['files', (d) => (d.files = 5), 'files: expected an array'],
    ['files[0]', (d) => (d.files[0] = 5), 'files[0]: expected an object'],
    [
      'files[1].path',
      (d) => (d.files[1].path = d.files[0].path),
      'files[1].path: expected a path not listed twice (got "config.json")',
    ],
    ['files[0].size', (d) => (d.files[0].size = -1), 'files[0].size: expected an integer >= 0'],
    ['files[0].kind', (d) => (d.files[0].kind = 'dir'), 'files[0].kind: expected one of'],
    ['dtypes', (d) => (d.dtypes = 'F32'), 'dtypes: expected an array'],
    ['dtypes[0]', (d) => (d.dtypes[0] = ''), 'dtypes[0]: expected a non-empty string'],
    ['version', (d) => (d.version = ''), 'version: expected a non-empty string'],
    ['model_id', (d) => (d.model_id = 5), 'model_id: expected a string'],
    ['created_at', (d) => (d.created_at = 5), 'created_at: expected a string'],
    ['checkpoint_root', (d) => (d.checkpoint_root = 5), 'checkpoint_root: expected a string'],
    ['hash_algo', (d) => (d.hash_algo = ''), 'hash_algo: expected a non-empty string'],
    [
      'entries.kind',
      (d) => (d.entries.kind = d.entries.kind.slice(1)),
      'entries.kind: expected 4 characters (one per entry) (got 3)',
    ],
    ['digest (not a string)', (d) => (d.digest = 5), 'digest: expected a string'],
    [
      'digest (not hex)',
      (d) => (d.digest = 'sha256:zz'),
      'digest: expected a digest "sha256:<64 hex digits>" (got "sha256:zz")',
    ],
    [
      'digest (a prefix before it)',
      (d) => (d.digest = `x${DIGEST}`),
      'digest: expected a digest "sha256:<64 hex digits>"',
    ],
    [
      'digest (a suffix after it)',
      (d) => (d.digest = `${DIGEST}0`),
      'digest: expected a digest "sha256:<64 hex digits>"',
    ],
  ];

  it.each(LOAD)('refuses a damaged %s, naming it', (_what, edit, message) => {
    expect(loadError(edit)).toContain(`m.json: ${message}`);
  });
});
