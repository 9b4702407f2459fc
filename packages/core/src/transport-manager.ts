/**
 * TransportManager: registration, discovery of installed transport packages, probing and
 * selection. Selection is by priority (cuda-ipc > nccl > mpi > ucx > local) among available
 * transports, unless a name is forced (`--transport` / HOTWEIGHTS_TRANSPORT).
 */

import { readdir, readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { NoTransportError, TransportError } from './errors.js';
import type { ProbeContext, ProbeResult, TransportPackageManifest, TransportProvider } from './transport.js';

/** Version of the contracts plugins are written against. Plugins declare a semver range of it. */
export const CORE_API_VERSION = '1.0.0';

/** Default priorities of the transports this project ships. */
export const BUILTIN_PRIORITIES: Readonly<Record<string, number>> = Object.freeze({
  'cuda-ipc': 50,
  nccl: 40,
  mpi: 30,
  ucx: 20,
  local: 10,
});

export const TRANSPORT_KEYWORD = 'hotweights-transport';

export interface TransportCandidate {
  readonly name: string;
  readonly priority: number;
  readonly version: string | undefined;
  /** `builtin`, or the package name it was discovered in. */
  readonly origin: string;
  /** The provider, absent when the package could not be loaded. */
  readonly provider: TransportProvider | undefined;
  /** Why the package could not be loaded (incompatible coreApi, import failure, bad export). */
  readonly loadError: string | undefined;
}

export interface ProbedCandidate extends TransportCandidate {
  readonly result: ProbeResult;
  readonly probeMs: number;
}

function isProvider(value: unknown): value is TransportProvider {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.name === 'string' &&
    /^[a-z0-9][a-z0-9-]*$/.test(v.name) &&
    typeof v.priority === 'number' &&
    Number.isFinite(v.priority) &&
    typeof v.probe === 'function' &&
    typeof v.create === 'function'
  );
}

/** Directories `node_modules` that Node would search from `start`, nearest first. */
function nodeModulesChain(start: string): string[] {
  const out: string[] = [];
  let dir = resolve(start);
  for (;;) {
    out.push(join(dir, 'node_modules'));
    const parent = dirname(dir);
    if (parent === dir) return out;
    dir = parent;
  }
}

async function listPackageDirs(nodeModules: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(nodeModules);
  } catch {
    return [];
  }
  const dirs: string[] = [];
  for (const name of names) {
    if (name.startsWith('.')) continue;
    if (name.startsWith('@')) {
      try {
        for (const sub of await readdir(join(nodeModules, name))) dirs.push(join(nodeModules, name, sub));
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
  hotweights?: Partial<TransportPackageManifest>;
}

async function readPackageJson(dir: string): Promise<PackageJson | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'package.json'), 'utf8')) as PackageJson;
  } catch {
    return undefined;
  }
}

/** Loads one discovered package; failures become a candidate with `loadError`. */
async function loadTransportPackage(
  dir: string,
  pkg: PackageJson,
  loadTimeoutMs: number,
): Promise<TransportCandidate> {
  const origin = pkg.name ?? dir;
  const base = { origin, version: pkg.version };
  const fallbackName = (pkg.name ?? dir).replace(/^@[^/]+\//, '').replace(/^(hotweights-)?transport-/, '');
  const failed = (loadError: string): TransportCandidate => ({
    ...base,
    name: fallbackName,
    priority: 0,
    provider: undefined,
    loadError,
  });
  const meta = pkg.hotweights;
  if (!meta || typeof meta.transport !== 'string' || typeof meta.coreApi !== 'string') {
    return failed('package.json lacks "hotweights": {"transport": "<entry>", "coreApi": "<range>"}');
  }
  // Loaded here, not at import: only discovery of installed plugins needs it.
  const semver = createRequire(import.meta.url)('semver') as typeof import('semver');
  if (!semver.validRange(meta.coreApi))
    return failed(`coreApi ${JSON.stringify(meta.coreApi)} is not a semver range`);
  if (!semver.satisfies(CORE_API_VERSION, meta.coreApi)) {
    return failed(`needs core API ${meta.coreApi}, this hotweights provides ${CORE_API_VERSION}`);
  }
  const entry = resolve(dir, meta.transport);
  // A prefix test would let `../pkg-evil/x.js` pass for a package in `pkg`.
  const inside = relative(resolve(dir), entry);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside))
    return failed(`transport entry ${meta.transport} is outside the package`);
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
    return failed(`cannot load ${meta.transport}: ${(err as Error).message.split('\n')[0]}`);
  } finally {
    clearTimeout(timer);
  }
  if (!mod) return failed(`${meta.transport} did not finish loading within ${loadTimeoutMs} ms`);
  const provider = [mod.provider, mod.default].find(isProvider);
  if (!provider) return failed(`${meta.transport} exports no TransportProvider as "provider" or default`);
  return {
    ...base,
    name: provider.name,
    priority: provider.priority,
    version: provider.version ?? pkg.version,
    provider,
    loadError: undefined,
  };
}

/**
 * Finds installed transport packages visible from `fromDir` (as Node resolution would see them):
 * packages whose package.json has the keyword `hotweights-transport`.
 */
export async function discoverTransportPackages(
  fromDir: string,
  options: { loadTimeoutMs?: number } = {},
): Promise<TransportCandidate[]> {
  const seen = new Set<string>();
  const found: TransportCandidate[] = [];
  for (const nm of nodeModulesChain(fromDir)) {
    for (const dir of await listPackageDirs(nm)) {
      const pkg = await readPackageJson(dir);
      if (!pkg || !Array.isArray(pkg.keywords) || !pkg.keywords.includes(TRANSPORT_KEYWORD)) continue;
      const key = pkg.name ?? dir;
      if (seen.has(key)) continue; // nearest copy wins, as in Node resolution
      seen.add(key);
      found.push(await loadTransportPackage(dir, pkg, options.loadTimeoutMs ?? 5000));
    }
  }
  return found;
}

async function probeWithTimeout(
  provider: TransportProvider,
  ctx: ProbeContext,
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
        .then(() => provider.probe(ctx))
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

export interface TransportManagerOptions {
  readonly providers?: readonly TransportProvider[];
  /** Probe deadline per transport; defaults to config.probeTimeoutMs. */
  readonly probeTimeoutMs?: number;
}

export class TransportManager {
  readonly #candidates = new Map<string, TransportCandidate>();
  readonly #probeTimeoutMs: number | undefined;

  constructor(options: TransportManagerOptions = {}) {
    this.#probeTimeoutMs = options.probeTimeoutMs;
    for (const p of options.providers ?? []) this.register(p);
  }

  /**
   * Registers a provider in code. A later registration of the same name replaces the earlier.
   * `version` is what listings show when the provider has none (built-ins: core's version).
   */
  register(provider: TransportProvider, origin = 'builtin', version = provider?.version): void {
    if (!isProvider(provider)) {
      throw new TransportError(
        'register: expected a TransportProvider {name, priority, probe(), create()} with a lowercase name',
        {
          code: 'HW_TRANSPORT_INVALID',
        },
      );
    }
    this.#candidates.set(provider.name, {
      name: provider.name,
      priority: provider.priority,
      version,
      origin,
      provider,
      loadError: undefined,
    });
  }

  /**
   * Adds packages found by discoverTransportPackages. In-code registrations keep precedence, and
   * so does what an earlier call found (call it with the application's directory first).
   */
  async discover(fromDir: string): Promise<TransportCandidate[]> {
    const found = await discoverTransportPackages(fromDir, { loadTimeoutMs: this.#probeTimeoutMs });
    for (const c of found) {
      const existing = this.#candidates.get(c.name);
      if (existing && (existing.provider || existing.origin !== 'builtin')) continue;
      this.#candidates.set(c.name, c);
    }
    return found;
  }

  candidates(): TransportCandidate[] {
    return [...this.#candidates.values()].sort(
      (a, b) => b.priority - a.priority || a.name.localeCompare(b.name),
    );
  }

  /** Probes every candidate concurrently. Never throws. */
  async probeAll(ctx: ProbeContext): Promise<ProbedCandidate[]> {
    const timeoutMs = this.#probeTimeoutMs ?? ctx.config.probeTimeoutMs;
    return Promise.all(
      this.candidates().map(async (c): Promise<ProbedCandidate> => {
        const started = performance.now();
        const result: ProbeResult = c.provider
          ? await probeWithTimeout(c.provider, ctx, timeoutMs)
          : { available: false, reason: c.loadError ?? 'not loaded' };
        return { ...c, result, probeMs: performance.now() - started };
      }),
    );
  }

  /**
   * Picks the transport to use: the forced one (must be available), else the available one with
   * the highest priority. Throws NoTransportError with every candidate's reason.
   */
  async select(
    ctx: ProbeContext,
    forced?: string,
  ): Promise<{ provider: TransportProvider; probed: ProbedCandidate[] }> {
    const probed = await this.probeAll(ctx);
    const provider = chooseTransport(probed, forced ?? ctx.config.transport).provider;
    return { provider, probed };
  }
}

/**
 * The selection rule on already-probed candidates (sorted by priority, as probeAll returns them):
 * the forced name, which must be available, else the first available one. Throws
 * NoTransportError listing every candidate's reason.
 */
export function chooseTransport(
  probed: readonly ProbedCandidate[],
  forced: string | undefined,
): ProbedCandidate & { provider: TransportProvider } {
  const reasons = Object.fromEntries(
    probed.map((p) => [p.name, p.result.available ? 'available' : p.result.reason] as const),
  );
  if (forced) {
    const hit = probed.find((p) => p.name === forced);
    if (!hit) throw new NoTransportError(`transport ${JSON.stringify(forced)} is not installed`, reasons);
    if (!hit.result.available || !hit.provider) {
      throw new NoTransportError(
        `transport ${JSON.stringify(forced)} is unavailable: ${hit.result.available ? 'not loaded' : hit.result.reason}`,
        reasons,
      );
    }
    return { ...hit, provider: hit.provider };
  }
  const best = probed.find((p) => p.result.available && p.provider);
  if (!best?.provider) throw new NoTransportError('no transport is available', reasons);
  return { ...best, provider: best.provider };
}
