/**
 * Core is what a third party installs to write a plugin, so it must stay the small contract
 * package: pure JavaScript, no native addon, no prom-client, no import of another hotweights
 * package. These checks read the package as it would be published.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CORE = fileURLToPath(new URL('..', import.meta.url));
const PACKAGES = join(CORE, '..');

interface PackageJson {
  readonly name: string;
  readonly dependencies?: Record<string, string>;
  readonly peerDependencies?: Record<string, string>;
  readonly optionalDependencies?: Record<string, string>;
  readonly scripts?: Record<string, string>;
  readonly gypfile?: boolean;
}

function packageJson(dir: string): PackageJson {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath, e.name));
}

/** Packages that would put a native addon or prom-client into every plugin's install. */
function heavyPackages(): Set<string> {
  const heavy = new Set(['prom-client', 'node-gyp-build', 'node-addon-api', 'koffi', 'zeromq', 'ioredis']);
  for (const entry of readdirSync(PACKAGES, { withFileTypes: true })) {
    if (!entry.isDirectory()) continue;
    const dir = join(PACKAGES, entry.name);
    const pkg = packageJson(dir);
    const native = readdirSync(dir).includes('binding.gyp');
    if (native) heavy.add(pkg.name);
  }
  return heavy;
}

describe('@hotweights/core package boundary', () => {
  const pkg = packageJson(CORE);
  const runtimeDeps = {
    ...pkg.dependencies,
    ...pkg.peerDependencies,
    ...pkg.optionalDependencies,
  };

  it('depends on no native addon, prom-client or other hotweights package', () => {
    const heavy = heavyPackages();
    expect(heavy.has('@hotweights/shm')).toBe(true); // the scan sees native packages
    const offending = Object.keys(runtimeDeps).filter((d) => heavy.has(d) || d.startsWith('@hotweights/'));
    expect(offending).toEqual([]);
  });

  it('has no install script and no native build', () => {
    expect(pkg.scripts?.install).toBeUndefined();
    expect(readdirSync(CORE)).not.toContain('binding.gyp');
  });

  it('imports only node built-ins, its own modules and its declared dependencies', () => {
    const allowed = new Set(Object.keys(runtimeDeps));
    const found: string[] = [];
    for (const file of sourceFiles(join(CORE, 'src'))) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/(?:from|import\()\s*'([^']+)'/g)) {
        const spec = m[1] as string;
        if (spec.startsWith('.') || spec.startsWith('node:')) continue;
        const name = spec.startsWith('@')
          ? spec.split('/').slice(0, 2).join('/')
          : (spec.split('/')[0] as string);
        if (!allowed.has(name)) found.push(`${file.slice(CORE.length)}: ${spec}`);
      }
    }
    expect(found).toEqual([]);
  });

  it('stays a small contract package (well under 2,500 source lines)', () => {
    // The variable table is counted apart: it is data, one documented entry per HOTWEIGHTS_*
    // variable users can set, and grows with the product's knobs, not with core's code. It must
    // stay data (no functions), and the code around it under 2,500 lines.
    const table = join(CORE, 'src', 'config-variables.ts');
    const tableText = readFileSync(table, 'utf8');
    expect(tableText).not.toMatch(/\bfunction\b|=>/);
    const lines = sourceFiles(join(CORE, 'src'))
      .filter((f) => f !== table)
      .reduce((n, f) => n + readFileSync(f, 'utf8').split('\n').length, 0);
    expect(lines).toBeLessThan(2500);
  });
});
