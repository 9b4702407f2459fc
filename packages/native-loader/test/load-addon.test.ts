import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { isNativeAddonError, lazyAddon, loadAddon, NativeAddonError } from '@hotweights/native-loader';
import { afterAll, describe, expect, it } from 'vitest';

const tmp = mkdtempSync(join(tmpdir(), 'hw-native-loader-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Demo {
  hello(): string;
}

/** A package folder as npm would install it: package.json, and whatever build the test adds. */
function packageDir(name: string): string {
  const root = join(tmp, name);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'package.json'), JSON.stringify({ name: `@hw-test/${name}`, version: '1.0.0' }));
  return root;
}

function loadError(root: string, systemLibraries?: Record<string, string>): NativeAddonError {
  try {
    loadAddon<Demo>({ packageName: '@hw-test/demo', root, requires: ['hello'], systemLibraries });
  } catch (err) {
    if (err instanceof NativeAddonError) return err;
    throw err;
  }
  throw new Error('the addon loaded');
}

const tuple = `${process.platform}-${process.arch}`;

describe('loadAddon', () => {
  it('with no build anywhere, lists every place it looked, the target and the fix', () => {
    const root = packageDir('unbuilt');
    const err = loadError(root);
    expect(err.code).toBe('HW_NATIVE_ADDON_MISSING');
    expect(err.tried).toEqual([
      join(root, 'build/Release'),
      join(root, 'build/Debug'),
      join(root, 'prebuilds', tuple),
      join(dirname(process.execPath), 'prebuilds', tuple),
    ]);
    for (const place of err.tried) expect(err.message).toContain(place);
    expect(err.message).toContain(
      `@hw-test/demo: native addon not loadable on ${tuple} (Node ${process.versions.node}, ABI ${process.versions.modules}, N-API ${process.versions.napi})`,
    );
    expect(err.message).toContain(`no build and no prebuild for ${tuple}`);
    expect(err.message).toContain('`npm rebuild @hw-test/demo`');
    expect(err.message).toContain(`prebuilds/${tuple}`);
    expect(err.message).not.toContain('\n');
    expect((err.cause as Error).message).toMatch(/No native build was found/);
  });

  it('with a damaged file, names the file and says it is not a library for this platform', () => {
    const root = packageDir('damaged');
    mkdirSync(join(root, 'build/Release'), { recursive: true });
    writeFileSync(join(root, 'build/Release/demo.node'), 'not an ELF file, a text file of some length');
    const err = loadError(root);
    expect(err.code).toBe('HW_NATIVE_ADDON_UNLOADABLE');
    expect(err.file).toBe(join(root, 'build/Release/demo.node'));
    expect(err.message).toContain(
      `${join(root, 'build/Release/demo.node')}: it is not a library for this platform`,
    );
    expect(err.fix).toMatch(/^remove it and build it from the shipped sources/);
  });

  it('with a prebuild that links a library this system lacks, names the library and how to install it', () => {
    // A real shared object linked against libhwgone.so, which is then deleted: what a user meets
    // when a prebuild needs a system library that is not installed.
    const root = packageDir('needs-lib');
    const prebuilds = join(root, 'prebuilds', tuple);
    mkdirSync(prebuilds, { recursive: true });
    writeFileSync(join(tmp, 'gone.c'), 'int hw_gone(void) { return 1; }\n');
    writeFileSync(join(tmp, 'demo.c'), 'int hw_gone(void);\nint hw_demo(void) { return hw_gone(); }\n');
    execFileSync('cc', ['-shared', '-fPIC', '-o', join(tmp, 'libhwgone.so'), join(tmp, 'gone.c')]);
    execFileSync('cc', [
      '-shared',
      '-fPIC',
      '-o',
      join(prebuilds, 'demo.napi.node'),
      join(tmp, 'demo.c'),
      `-L${tmp}`,
      '-lhwgone',
    ]);
    rmSync(join(tmp, 'libhwgone.so'));

    const unknown = loadError(root);
    expect(unknown.code).toBe('HW_NATIVE_ADDON_UNLOADABLE');
    expect(unknown.file).toBe(join(prebuilds, 'demo.napi.node'));
    expect(unknown.problem).toMatch(/^the system library libhwgone\.so is not installed/);
    expect(unknown.fix).toContain('`apt-file search libhwgone.so`');

    const known = loadError(root, { 'libhwgone.so': 'apt-get install libhwgone1' });
    expect(known.message).toContain('fix: install it: apt-get install libhwgone1');
  });

  it('errors are recognised by code, not by class identity', () => {
    const err = loadError(packageDir('by-code'));
    const copy = Object.assign(new Error(err.message), { code: err.code });
    expect(isNativeAddonError(copy)).toBe(true);
    expect(isNativeAddonError(new Error('other'))).toBe(false);
  });
});

describe('lazyAddon', () => {
  it('does nothing until asked, then reports the same failure on every call', () => {
    const root = packageDir('lazy');
    const addon = lazyAddon<Demo>({ packageName: '@hw-test/demo', root, requires: ['hello'] });
    const reason = addon.unavailableReason();
    expect(reason).toContain('no build and no prebuild');
    expect(addon.tryLoad()).toBeInstanceOf(NativeAddonError);
    expect(() => addon.load()).toThrow(reason);
  });
});
