/**
 * The target directory's layout (layout.ts): a version string, whatever it holds, names one folder
 * directly under versions/ (never outside it, never a hidden or dot folder), and two versions never
 * share one. The hash suffix of a rewritten name is checked against Python's FNV-1a.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { safeVersion, TargetLayout } from '@hotweights/adapter-directory';
import { describe, expect, it } from 'vitest';

const TRICKY = [
  '..',
  '.',
  '...',
  '.hidden',
  '../../etc',
  'a/b',
  'a:b',
  'a b',
  'v1\0',
  'ünï',
  `${'x'.repeat(80)}y`,
  `${'x'.repeat(80)}z`,
  `${'x'.repeat(79)}/`,
];

/**
 * The documented rule, in Python: characters outside [A-Za-z0-9._-] become `_`, leading dots one
 * `_`, at most 80 characters, then (when that changed it) `~` and the FNV-1a (32 bit) hash of the
 * version's UTF-16 units.
 */
function pythonSafe(values: readonly string[]): string[] {
  const script = [
    'import json, re, sys',
    'for v in json.load(sys.stdin):',
    "    s = re.sub(r'^\\.+', '_', re.sub(r'[^A-Za-z0-9._-]', '_', v))[:80]",
    "    b = v.encode('utf-16-le')",
    '    h = 0x811c9dc5',
    '    for i in range(0, len(b), 2):',
    '        h = ((h ^ (b[i] | b[i + 1] << 8)) * 0x01000193) & 0xffffffff',
    "    print(s if s == v else s + '~%08x' % h)",
  ].join('\n');
  return execFileSync('python3', ['-c', script], { input: JSON.stringify(values), encoding: 'utf8' })
    .trimEnd()
    .split('\n');
}

describe('safeVersion', () => {
  it('keeps a version that is already a safe folder name', () => {
    for (const v of ['v1', 'v1.2.3', 'run-7_final', 'A.b-C_d', 'x'.repeat(80), 'v..1', 'a_b', '-'])
      expect(safeVersion(v)).toBe(v);
  });

  it('makes any other version a folder name of its own directly under versions/', () => {
    const names = TRICKY.map(safeVersion);
    expect(names).toEqual(pythonSafe(TRICKY));
    for (const name of names) {
      expect(name).toMatch(/^[A-Za-z0-9_-][A-Za-z0-9._-]*~[0-9a-f]{8}$/);
      expect(name.length).toBeLessThanOrEqual(89);
      const layout = new TargetLayout('/t');
      expect(layout.versionDir(name)).toBe(join('/t/versions', name));
    }
    // Distinct versions, distinct folders (the safe ones included).
    expect(new Set([...names, 'a_b', '_', '__']).size).toBe(names.length + 3);
  });
});

describe('TargetLayout', () => {
  it('places the links, versions and records where the documented layout says', () => {
    const l = new TargetLayout('/srv/model');
    expect({
      current: l.current,
      previous: l.previous,
      versions: l.versionsDir,
      meta: l.metaDir,
      version: l.versionDir('v1'),
      link: l.linkText('v1'),
      record: l.metaFile('v1'),
      manifest: l.manifestFile('v1'),
      partials: l.partialsDir,
      partial: l.partialRecord('v1.partial-1-abcdef'),
    }).toEqual({
      current: '/srv/model/current',
      previous: '/srv/model/previous',
      versions: '/srv/model/versions',
      meta: '/srv/model/.hotweights',
      version: '/srv/model/versions/v1',
      link: 'versions/v1',
      record: '/srv/model/.hotweights/v1.json',
      manifest: '/srv/model/.hotweights/v1.manifest.json',
      partials: '/srv/model/.hotweights/partials',
      partial: '/srv/model/.hotweights/partials/v1.partial-1-abcdef',
    });
  });
});
