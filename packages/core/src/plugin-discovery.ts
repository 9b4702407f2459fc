/**
 * What the transport and adapter managers share: finding installed plugin packages (by keyword,
 * as Node resolution sees them), checking their `"hotweights"` field against the core API,
 * loading their provider, and probing providers under a deadline. A failure never throws: it
 * becomes a candidate with `loadError`, or an unavailable probe result, with the reason.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { ProbeResult } from './transport.js';

/** Version of the contracts plugins are written against. Plugins declare a semver range of it. */
export const CORE_API_VERSION = '1.1.0';

/** How one kind of plugin is recognised. */
export interface PluginKind<P> {
  /** package.json keyword, e.g. `hotweights-transport`. */
  readonly keyword: string;
  /** Field of package.json's `"hotweights"` object naming the entry module, e.g. `transport`. */
  readonly field: string;
  /** What the entry must export, for messages: `TransportProvider`. */
  readonly contract: string;
  isProvider(value: unknown): value is P;
  /** Name shown for a package whose provider could not be loaded. */
  fallbackName(packageName: string): string;
}

export interface PluginCandidate<P> {
  readonly name: string;
  readonly version: string | undefined;
  /** `builtin`, or the package name it was discovered in. */
  readonly origin: string;
  /** The provider, absent when the package could not be loaded. */
  readonly provider: P | undefined;
  /** Why the package could not be loaded (incompatible coreApi, import failure, bad export). */
  readonly loadError: string | undefined;
}

/** A provider's name as `--transport` / `--adapter` take it. */
export function isPluginName(name: unknown): name is string {
  return typeof name === 'string' && /^[a-z0-9][a-z0-9-]*$/.test(name);
}

/**
 * Directories `node_modules` that Node would search from each of `starts`, nearest first, the
 * first start's chain before the next one's, each directory once (an application inside the
 * CLI's workspace shares most of its chain with the CLI's).
 */
function nodeModulesChains(starts: readonly string[]): string[] {
  const out = new Set<string>();
  for (const start of starts) {
    let dir = resolve(start);
    for (;;) {
      out.add(join(dir, 'node_modules'));
      const parent = dirname(dir);
      if (parent === dir) break;
      dir = parent;
    }
  }
  return [...out];
}

// Folders and package.json files are read synchronously: a few hundred small files take ~5 ms
// that way and ~60 ms through fs/promises (four thread-pool round trips each), and every rank of
// every update starts by discovering its transports.
function listPackageDirs(nodeModules: string): string[] {
  let names: string[];
  try {
    names = readdirSync(nodeModules);
  } catch {
    return [];
  }
  const dirs: string[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) {
      try {
        for (const sub of readdirSync(join(nodeModules, name))) dirs.push(join(nodeModules, name, sub));
      } catch {
        // unreadable scope folder: nothing to discover there
      }
    } else {
      dirs.push(join(nodeModules, name));
    }
  }
  return dirs;
}

interface PackageJson {
  name?: string;
  version?: string;
  keywords?: unknown;
  hotweights?: Record<string, unknown>;
}

function readPackageJson(dir: string): PackageJson | undefined {
  try {
    return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

/** Loads one discovered package; failures become a candidate with `loadError`. */
async function loadPluginPackage<P extends { name: string; version?: string }>(
  kind: PluginKind<P>,
  dir: string,
  pkg: PackageJson,
  loadTimeoutMs: number,
): Promise<PluginCandidate<P>> {
  const origin = pkg.name ?? dir;
  const base = { origin, version: pkg.version };
  const failed = (loadError: string): PluginCandidate<P> => ({
    ...base,
    name: kind.fallbackName(pkg.name ?? dir),
    provider: undefined,
    loadError,
  });
  const meta = pkg.hotweights;
  const entryPath = meta?.[kind.field];
  if (!meta || typeof entryPath !== 'string' || typeof meta.coreApi !== 'string') {
    return failed(`package.json lacks "hotweights": {"${kind.field}": "<entry>", "coreApi": "<range>"}`);
  }
  // Loaded here, not at import: only discovery of installed plugins needs it.
  // The two functions, not semver's whole index (half its load time, which every rank paid).
  const require = createRequire(import.meta.url);
  const validRange = require('semver/ranges/valid.js') as typeof import('semver/ranges/valid.js');
  const satisfies =
    require('semver/functions/satisfies.js') as typeof import('semver/functions/satisfies.js');
  if (!validRange(meta.coreApi))
    return failed(`coreApi ${JSON.stringify(meta.coreApi)} is not a semver range`);
  if (!satisfies(CORE_API_VERSION, meta.coreApi)) {
    return failed(`needs core API ${meta.coreApi}, this hotweights provides ${CORE_API_VERSION}`);
  }
  const entry = resolve(dir, entryPath);
  // A prefix test would let `../pkg-evil/x.js` pass for a package in `pkg`.
  const inside = relative(resolve(dir), entry);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside))
    return failed(`${kind.field} entry ${entryPath} is outside the package`);
  let mod: Record<string, unknown> | undefined;
  let timer: NodeJS.Timeout | undefined;
  try {
    // A module that never finishes loading (a top-level await on the network) must not hang
    // discovery: like a slow probe, it becomes a reason.
    mod = await Promise.race([
      import(pathToFileURL(entry).href) as Promise<Record<string, unknown>>,
      new Promise<undefined>((res) => {
        // not unref'd: while a load is pending, this timer is what keeps the process alive
        timer = setTimeout(() => res(undefined), loadTimeoutMs);
      }),
    ]);
  } catch (err) {
    return failed(`cannot load ${entryPath}: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    clearTimeout(timer);
  }
  if (!mod) return failed(`${entryPath} did not finish loading within ${loadTimeoutMs} ms`);
  const provider = [mod.provider, mod.default].find((v) => kind.isProvider(v));
  if (!provider) return failed(`${entryPath} exports no ${kind.contract} as "provider" or default`);
  return {
    ...base,
    name: provider.name,
    version: provider.version ?? pkg.version,
    provider,
    loadError: undefined,
  };
}

/**
 * Finds installed plugin packages of one kind visible from `fromDir` (as Node resolution would
 * see them; with several directories, from each in turn): packages whose package.json has the
 * kind's keyword. The nearest copy of a package wins, and a copy seen from an earlier directory
 * wins over one seen only from a later one.
 */
export async function discoverPlugins<P extends { name: string; version?: string }>(
  kind: PluginKind<P>,
  fromDir: string | readonly string[],
  options: { loadTimeoutMs?: number } = {},
): Promise<PluginCandidate<P>[]> {
  const seen = new Set<string>();
  const wanted: [string, PackageJson][] = [];
  for (const nm of nodeModulesChains(typeof fromDir === 'string' ? [fromDir] : fromDir)) {
    for (const dir of listPackageDirs(nm)) {
      const pkg = readPackageJson(dir);
      if (!pkg || !Array.isArray(pkg.keywords) || !pkg.keywords.includes(kind.keyword)) continue;
      const key = pkg.name ?? dir;
      if (seen.has(key)) continue;
      seen.add(key);
      wanted.push([dir, pkg]);
    }
  }
  // The packages load side by side (their imports read files); candidates keep folder order.
  return Promise.all(
    wanted.map(([dir, pkg]) => loadPluginPackage(kind, dir, pkg, options.loadTimeoutMs ?? 5000)),
  );
}

/** Runs a provider's probe under a deadline; a throw, a hang or a malformed answer is a reason. */
export async function probeWithTimeout(
  probe: () => Promise<ProbeResult>,
  timeoutMs: number,
): Promise<ProbeResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<ProbeResult>((res) => {
    timer = setTimeout(
      () => res({ available: false, reason: `probe did not answer within ${timeoutMs} ms` }),
      timeoutMs,
    );
  });
  try {
    const result = await Promise.race([
      Promise.resolve()
        .then(probe)
        .catch(
          (err: unknown): ProbeResult => ({
            available: false,
            reason: `probe threw: ${(err as Error)?.message ?? String(err)}`,
          }),
        ),
      timeout,
    ]);
    if (!result || typeof result !== 'object' || typeof result.available !== 'boolean') {
      return { available: false, reason: 'probe returned something other than {available, …}' };
    }
    if (!result.available && (typeof result.reason !== 'string' || result.reason.trim() === ''))
      return { available: false, reason: 'unavailable (no reason given)' };
    return result;
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Adds discovered candidates to a registry keyed by name. In-code registrations keep precedence,
 * and so does what an earlier call found (discover from the application's directory first).
 */
export function mergeDiscovered<C extends PluginCandidate<unknown>>(
  registry: Map<string, C>,
  found: readonly C[],
): void {
  for (const c of found) {
    const existing = registry.get(c.name);
    if (existing && (existing.provider || existing.origin !== 'builtin')) continue;
    registry.set(c.name, c);
  }
}

/** Probes every candidate concurrently (a candidate that did not load is unavailable). Never throws. */
export function probeCandidates<P, C extends PluginCandidate<P>>(
  candidates: readonly C[],
  probe: (provider: P) => Promise<ProbeResult>,
  timeoutMs: number,
): Promise<(C & { readonly result: ProbeResult; readonly probeMs: number })[]> {
  return Promise.all(
    candidates.map(async (c) => {
      const started = performance.now();
      const { provider } = c;
      const result: ProbeResult =
        provider !== undefined
          ? await probeWithTimeout(() => probe(provider), timeoutMs)
          : { available: false, reason: c.loadError ?? 'not loaded' };
      return { ...c, result, probeMs: performance.now() - started };
    }),
  );
}
