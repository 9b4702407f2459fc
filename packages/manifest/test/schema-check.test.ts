/**
 * The checks every manifest and plan field goes through (schema-check.ts): path confinement (a
 * manifest or plan must never name a file outside the checkpoint root), the one-line messages a
 * user gets for a wrong field, and the canonical JSON that digests are computed over, compared
 * with Python's json module.
 */
import { execFileSync } from 'node:child_process';
import { canonicalJson, isConfinedRelativePath, SchemaChecker } from '@hotweights/manifest';
import { describe, expect, it } from 'vitest';

/** The message `check` throws with a checker of `file` (null: none); fails when nothing is thrown. */
function refusal(check: (c: SchemaChecker) => unknown, file: string | null = 'plan.json'): string {
  try {
    check(new SchemaChecker(file ?? undefined));
  } catch (err) {
    expect((err as { code?: string }).code).toBe('HW_SCHEMA');
    return (err as Error).message;
  }
  throw new Error('the check accepted the value');
}

describe('isConfinedRelativePath', () => {
  it('accepts relative paths that stay inside the root, dots inside names included', () => {
    for (const p of ['model.safetensors', 'a/b/c.bin', 'a..b', '...', '.hidden/x', 'x/..y', 'ünï/côde'])
      expect(isConfinedRelativePath(p), p).toBe(true);
  });

  it('refuses absolute paths, parent and current-folder segments, empty segments, backslashes and NUL', () => {
    for (const p of [
      '',
      '/etc/passwd',
      '/',
      '..',
      '../x',
      'a/../../x',
      'a/..',
      '.',
      './a',
      'a/./b',
      'a//b',
      'a/',
      'a\\..\\b',
      'dir\\file',
      'a\0b',
      '\0',
    ])
      expect(isConfinedRelativePath(p), JSON.stringify(p)).toBe(false);
  });

  it('is what relativePath checks, naming the field and the path', () => {
    expect(refusal((c) => c.relativePath('../secret', 'files[2].path'))).toBe(
      'plan.json: files[2].path: expected a relative path inside the checkpoint root (got "../secret")',
    );
    expect(refusal((c) => c.relativePath('', 'files[0].path'))).toBe(
      'plan.json: files[0].path: expected a non-empty string (got "")',
    );
    expect(new SchemaChecker(undefined).relativePath('a/b', 'uri')).toBe('a/b');
  });
});

describe('SchemaChecker messages', () => {
  it('names the file, the field, what was expected and what it got', () => {
    const long = 'x'.repeat(41);
    const cases: [(c: SchemaChecker) => unknown, string][] = [
      [(c) => c.object(null, 'plan'), 'plan: expected an object (got null)'],
      [(c) => c.object([1], 'plan'), 'plan: expected an object (got an array)'],
      [(c) => c.object('x', 'plan'), 'plan: expected an object (got "x")'],
      [(c) => c.array({}, 'buckets'), 'buckets: expected an array (got an object)'],
      [(c) => c.string(7, 'version'), 'version: expected a string (got 7)'],
      [(c) => c.string(long, 'version', { nonEmpty: true }), ''],
      [(c) => c.string(long.slice(1), 'version', { nonEmpty: true }), ''],
      [(c) => c.string('', 'version', { nonEmpty: true }), 'version: expected a non-empty string (got "")'],
      [(c) => c.count(-1, 'size'), 'size: expected an integer >= 0 (got -1)'],
      [(c) => c.count(1.5, 'size'), 'size: expected an integer >= 0 (got 1.5)'],
      [(c) => c.count('3', 'size'), 'size: expected an integer >= 0 (got "3")'],
      [(c) => c.count(2 ** 53, 'size'), `size: expected an integer >= 0 (got ${2 ** 53})`],
      [(c) => c.count(0, 'world_size', { min: 1 }), 'world_size: expected an integer >= 1 (got 0)'],
      [(c) => c.literal(2, 'manifest_version', 3), 'manifest_version: expected 3 (got 2)'],
      [(c) => c.literal('v', 'kind', 'w'), 'kind: expected "w" (got "v")'],
      [(c) => c.oneOf('zip', 'kind', ['file', 'tensor']), 'kind: expected one of file, tensor (got "zip")'],
      [(c) => c.oneOf(1, 'kind', ['file']), 'kind: expected one of file (got 1)'],
      [(c) => c.hash('blake3:00ff', 'hash'), ''],
      [(c) => c.hash('blake3:00FF', 'hash'), 'hash: expected a hash "<algo>:<hex>" (got "blake3:00FF")'],
      [(c) => c.hash('x blake3:00', 'hash'), 'hash: expected a hash "<algo>:<hex>" (got "x blake3:00")'],
      [(c) => c.hash('blake3:00 x', 'hash'), 'hash: expected a hash "<algo>:<hex>" (got "blake3:00 x")'],
      [(c) => c.hash('blake3:', 'hash'), 'hash: expected a hash "<algo>:<hex>" (got "blake3:")'],
      [(c) => c.hash(3, 'hash'), 'hash: expected a string (got 3)'],
      [(c) => c.fail('x', 'nothing'), 'x: expected nothing'],
      [(c) => c.fail('x', 'nothing', undefined), 'x: expected nothing (got undefined)'],
    ];
    for (const [check, message] of cases) {
      let got = '';
      try {
        check(new SchemaChecker('plan.json'));
      } catch (err) {
        got = (err as Error).message;
      }
      expect(got).toBe(message ? `plan.json: ${message}` : '');
    }
    // Long strings are cut at 40 characters in the message.
    expect(refusal((c) => c.count(`${'y'.repeat(40)}z`, 'size'), null)).toBe(
      `size: expected an integer >= 0 (got "${'y'.repeat(40)}…")`,
    );
    expect(refusal((c) => c.count('y'.repeat(40), 'size'), null)).toBe(
      `size: expected an integer >= 0 (got "${'y'.repeat(40)}")`,
    );
    // What passes comes back unchanged.
    const c = new SchemaChecker('plan.json');
    expect(c.nullableString(undefined, 'reason')).toBeNull();
    expect(c.nullableString(null, 'reason')).toBeNull();
    expect(c.nullableString('r', 'reason')).toBe('r');
    expect(c.count(5, 'n', { min: 5 })).toBe(5);
    expect(c.string('', 'empty allowed')).toBe('');
  });
});

describe('canonicalJson', () => {
  it("matches Python's json.dumps(sort_keys=True, separators=(',', ':'))", () => {
    const values: unknown[] = [
      null,
      0,
      -1.5,
      'tab\t"quote"\\',
      [],
      {},
      [1, null, 'a', [2, [3]], { b: 1, a: 2 }],
      { z: 1, a: { y: [true, false], b: null }, m: 'x', '': 0, A: 1 },
      { version: 'v1', buckets: [[0, 1024, [['k:0', 'blake3:00', 0, 8]]]] },
    ];
    const python = execFileSync(
      'python3',
      [
        '-c',
        "import json, sys\nfor v in json.load(sys.stdin): print(json.dumps(v, sort_keys=True, separators=(',', ':')))",
      ],
      { input: JSON.stringify(values), encoding: 'utf8' },
    );
    expect(values.map((v) => canonicalJson(v))).toEqual(python.trimEnd().split('\n'));
  });

  it('writes undefined as JSON.stringify does: null in an array, left out of an object', () => {
    expect(canonicalJson([1, undefined, 2])).toBe('[1,null,2]');
    expect(canonicalJson({ b: undefined, a: 1, c: [undefined] })).toBe('{"a":1,"c":[null]}');
    expect(canonicalJson({ b: undefined, a: 1 })).toBe(
      canonicalJson(JSON.parse(JSON.stringify({ b: undefined, a: 1 }))),
    );
  });
});
