/**
 * Finds and loads a package's native addon the way its install script (`node-gyp-build`) does:
 * a local build (`build/Release`, `build/Debug`) first, then `prebuilds/<platform>-<arch>` in the
 * package, then prebuilds next to the Node executable. On failure it throws a NativeAddonError
 * that names every place searched and the fix. Nothing is loaded at import: packages call
 * `lazyAddon` once at module scope and the addon is opened on first use, so commands that never
 * touch it never pay for it.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { diagnoseLoadFailure, rebuildFix } from './diagnose.js';
import { type AddonTarget, NativeAddonError } from './native-addon-error.js';

export interface AddonSpec<T extends object> {
  /** The npm package that ships the addon (named in messages and in `npm rebuild`). */
  readonly packageName: string;
  /** The package's folder, holding binding.gyp, build/ and prebuilds/. */
  readonly root: string;
  /** Exports the package calls: a build lacking one is reported as out of date. */
  readonly requires: readonly (keyof T & string)[];
  /**
   * Install hints for system libraries the addon links against, by soname prefix, e.g.
   * `{ 'libstdc++.so': 'apt-get install libstdc++6' }`.
   */
  readonly systemLibraries?: Readonly<Record<string, string>>;
}

export interface LoadedAddon<T extends object> {
  readonly binding: T;
  /** The file loaded, for worker threads that `require()` it themselves. */
  readonly path: string;
}

interface NodeGypBuild {
  resolve(dir: string): string;
}

const require = createRequire(import.meta.url);

/** What this process can load: prebuilds are chosen by platform and arch, then N-API or ABI. */
export function currentTarget(): AddonTarget {
  return {
    platform: process.platform,
    arch: process.arch,
    node: process.versions.node,
    abi: process.versions.modules,
    napi: process.versions.napi ?? 'none',
  };
}

/** The directories searched for an addon of the package at `root`, in order. */
export function addonPlaces(root: string, target: AddonTarget = currentTarget()): string[] {
  const tuple = `${target.platform}-${target.arch}`;
  return [
    join(root, 'build', 'Release'),
    join(root, 'build', 'Debug'),
    join(root, 'prebuilds', tuple),
    join(dirname(process.execPath), 'prebuilds', tuple),
  ];
}

/** Loads the addon now; throws NativeAddonError when it cannot. */
export function loadAddon<T extends object>(spec: AddonSpec<T>): LoadedAddon<T> {
  const target = currentTarget();
  const tuple = `${target.platform}-${target.arch}`;
  const tried = addonPlaces(spec.root, target);
  const base = { packageName: spec.packageName, tried, target };
  let path: string;
  try {
    path = (require('node-gyp-build') as NodeGypBuild).resolve(spec.root);
  } catch (cause) {
    throw new NativeAddonError({
      ...base,
      code: 'HW_NATIVE_ADDON_MISSING',
      problem: `no build and no prebuild for ${tuple}`,
      fix: rebuildFix(spec.packageName, tuple),
      cause,
    });
  }
  let binding: T;
  try {
    binding = require(path) as T;
  } catch (cause) {
    throw new NativeAddonError({
      ...base,
      code: 'HW_NATIVE_ADDON_UNLOADABLE',
      file: path,
      ...diagnoseLoadFailure(spec.packageName, tuple, cause, spec.systemLibraries ?? {}),
      cause,
    });
  }
  const missing = spec.requires.filter((name) => binding[name] === undefined);
  if (missing.length > 0)
    throw new NativeAddonError({
      ...base,
      code: 'HW_NATIVE_ADDON_INCOMPLETE',
      file: path,
      problem: `it lacks ${missing.join(', ')}: it was built from older sources than this package`,
      fix: path.startsWith(join(spec.root, 'build'))
        ? `remove ${join(spec.root, 'build')} (a local build), then ${rebuildFix(spec.packageName, tuple)}`
        : `reinstall ${spec.packageName} so its prebuild matches its JavaScript, or ${rebuildFix(spec.packageName, tuple)}`,
    });
  return { binding, path };
}

export interface LazyAddon<T extends object> {
  /** The addon, loaded on the first call; throws the same NativeAddonError on every call after a failure. */
  load(): LoadedAddon<T>;
  /** The binding, or the NativeAddonError: for packages that fall back to JavaScript. */
  tryLoad(): LoadedAddon<T> | NativeAddonError;
  /** Why the addon is not usable, or undefined when it is (loads it). */
  unavailableReason(): string | undefined;
}

/** One addon, loaded at most once per process, on first use. */
export function lazyAddon<T extends object>(spec: AddonSpec<T>): LazyAddon<T> {
  let result: LoadedAddon<T> | NativeAddonError | undefined;
  const tryLoad = (): LoadedAddon<T> | NativeAddonError => {
    if (result === undefined) {
      try {
        result = loadAddon(spec);
      } catch (err) {
        if (!(err instanceof NativeAddonError)) throw err;
        result = err;
      }
    }
    return result;
  };
  return {
    tryLoad,
    load() {
      const r = tryLoad();
      if (r instanceof NativeAddonError) throw r;
      return r;
    },
    unavailableReason() {
      const r = tryLoad();
      return r instanceof NativeAddonError ? r.message : undefined;
    },
  };
}
