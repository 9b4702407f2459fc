/**
 * lerna-lite as configured (lerna.json: independent versions from conventional commits), run on a
 * temporary clone of this repository: after a release baseline (every package tagged at its
 * version), a `feat(core)` commit must give @hotweights/core a minor bump and every package that
 * depends on it, directly or through another package, a patch bump with its ranges updated.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO_ROOT = resolve(import.meta.dirname, '../../..');
const LERNA = join(REPO_ROOT, 'node_modules/@lerna-lite/cli/dist/cli.js');

const tmp = mkdtempSync(join(tmpdir(), 'hw-release-'));
const clone = join(tmp, 'repo');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Manifest {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

/** The clone's packages by folder, as lerna sees them (lerna.json: packages/*). */
function manifests(root: string): Map<string, Manifest> {
  const out = new Map<string, Manifest>();
  for (const dir of readdirSync(join(root, 'packages'))) {
    const file = join(root, 'packages', dir, 'package.json');
    if (existsSync(file)) out.set(dir, JSON.parse(readFileSync(file, 'utf8')) as Manifest);
  }
  return out;
}

/** Packages that depend on `name` through dependencies or devDependencies, transitively. */
function dependentsOf(name: string, all: Iterable<Manifest>): Set<string> {
  const list = [...all];
  const found = new Set<string>();
  let grew = true;
  while (grew) {
    grew = false;
    for (const m of list) {
      if (found.has(m.name) || m.name === name) continue;
      const deps = Object.keys({ ...m.dependencies, ...m.devDependencies });
      if (deps.some((d) => d === name || found.has(d))) {
        found.add(m.name);
        grew = true;
      }
    }
  }
  return found;
}

function git(...args: string[]): string {
  return execFileSync('git', args, { cwd: clone, encoding: 'utf8' });
}

const env = { ...process.env, GIT_AUTHOR_NAME: 'Release Test', GIT_AUTHOR_EMAIL: 'release@test.invalid' };
Object.assign(env, { GIT_COMMITTER_NAME: env.GIT_AUTHOR_NAME, GIT_COMMITTER_EMAIL: env.GIT_AUTHOR_EMAIL });

let before: Map<string, Manifest>;
let after: Map<string, Manifest>;
let output: string;

beforeAll(() => {
  execFileSync('git', ['clone', '--quiet', '--no-hardlinks', REPO_ROOT, clone]);
  git('checkout', '--quiet', '-B', 'main'); // lerna.json allows versioning from main only
  before = manifests(clone);
  // The release baseline: lerna's independent-mode tags, annotated as `lerna version` makes them.
  for (const m of before.values())
    execFileSync('git', ['tag', '-a', `${m.name}@${m.version}`, '-m', `${m.name}@${m.version}`], {
      cwd: clone,
      env,
    });

  writeFileSync(join(clone, 'packages/core/src/release-test-feature.ts'), 'export const RELEASE_TEST = 1;\n');
  git('add', '-A');
  execFileSync('git', ['commit', '--quiet', '-m', 'feat(core): a contract for the release test'], {
    cwd: clone,
    env,
  });

  output = execFileSync(
    process.execPath,
    [LERNA, 'version', '--conventional-commits', '--no-git-tag-version', '--no-push', '--yes'],
    {
      cwd: clone,
      env: { ...env, CI: 'true', NO_COLOR: '1', FORCE_COLOR: '0' },
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  after = manifests(clone);
});

describe('lerna-lite version from conventional commits (dry run: no tag, commit or push)', () => {
  it('gives @hotweights/core a minor bump and says so', () => {
    const core = [...after.values()].find((m) => m.name === '@hotweights/core');
    expect(core?.version).toBe('0.2.0');
    expect(output).toContain('@hotweights/core: 0.1.0 => 0.2.0');
    expect(readFileSync(join(clone, 'packages/core/CHANGELOG.md'), 'utf8')).toContain(
      'a contract for the release test',
    );
  });

  it('gives every dependent of core a patch bump with the new core range, and leaves the rest alone', () => {
    const dependents = dependentsOf('@hotweights/core', before.values());
    expect(dependents.size).toBeGreaterThan(3);
    for (const [dir, old] of before) {
      const now = after.get(dir) as Manifest;
      if (old.name === '@hotweights/core') continue;
      if (dependents.has(old.name)) {
        const [major, minor, patch] = old.version.split('.').map(Number) as [number, number, number];
        expect(now.version, old.name).toBe(`${major}.${minor}.${patch + 1}`);
        for (const field of ['dependencies', 'devDependencies'] as const)
          if (now[field]?.['@hotweights/core'])
            expect(now[field]['@hotweights/core'], old.name).toMatch(/0\.2\.0$/);
      } else {
        expect(now.version, old.name).toBe(old.version);
      }
    }
  });

  it('leaves no tag, commit or push behind, only the changed files', () => {
    expect(git('tag', '--points-at', 'HEAD').trim()).toBe('');
    expect(git('log', '-1', '--format=%s').trim()).toBe('feat(core): a contract for the release test');
    expect(git('status', '--porcelain')).toContain('packages/core/package.json');
  });
});
