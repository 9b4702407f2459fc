/**
 * AdapterManager: registration, discovery of installed adapter packages (keyword
 * `hotweights-adapter`), probing and selection by name. Unlike transports there is no priority:
 * the adapter decides where live weights are, so the caller names it (`--adapter` /
 * HOTWEIGHTS_ADAPTER, or the CLI's default).
 */
import type { Adapter, AdapterOptions, AdapterProvider } from './adapter.js';
import { AdapterError, NoAdapterError } from './errors.js';
import { discoverPlugins, isPluginName, type PluginCandidate, type PluginKind } from './plugin-discovery.js';
import { PluginRegistry } from './plugin-registry.js';
import type { ProbeResult } from './transport.js';

export const ADAPTER_KEYWORD = 'hotweights-adapter';

export type AdapterCandidate = PluginCandidate<AdapterProvider>;

export interface ProbedAdapter extends AdapterCandidate {
  readonly result: ProbeResult;
  readonly probeMs: number;
}

function isAdapterProvider(value: unknown): value is AdapterProvider {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return isPluginName(v.name) && typeof v.probe === 'function' && typeof v.create === 'function';
}

const ADAPTER_METHODS = ['currentVersion', 'prepare', 'commit', 'abort', 'rollback'] as const;

const ADAPTER_PLUGINS: PluginKind<AdapterProvider> = {
  keyword: ADAPTER_KEYWORD,
  field: 'adapter',
  contract: 'AdapterProvider',
  isProvider: isAdapterProvider,
  fallbackName: (pkg) => pkg.replace(/^@[^/]+\//, '').replace(/^(hotweights-)?adapter-/, ''),
};

/** Finds installed adapter packages visible from `fromDir` (or from each of several; keyword `hotweights-adapter`). */
export function discoverAdapterPackages(
  fromDir: string | readonly string[],
  options: { loadTimeoutMs?: number } = {},
): Promise<AdapterCandidate[]> {
  return discoverPlugins(ADAPTER_PLUGINS, fromDir, options);
}

export interface AdapterManagerOptions {
  readonly providers?: readonly AdapterProvider[];
  /** Probe deadline per adapter; defaults to config.probeTimeoutMs. */
  readonly probeTimeoutMs?: number;
}

export class AdapterManager extends PluginRegistry<AdapterProvider, AdapterCandidate> {
  constructor(options: AdapterManagerOptions = {}) {
    super(options.probeTimeoutMs);
    for (const p of options.providers ?? []) this.register(p);
  }

  protected isProvider(value: unknown): value is AdapterProvider {
    return isAdapterProvider(value);
  }

  protected invalidProvider(): Error {
    return new AdapterError(
      'register: expected an AdapterProvider {name, probe(), create()} with a lowercase name',
      { code: 'HW_ADAPTER_INVALID' },
    );
  }

  protected candidateOf(provider: AdapterProvider, origin: string, version: string | undefined) {
    return { name: provider.name, version, origin, provider, loadError: undefined };
  }

  protected findInstalled(
    fromDirs: readonly string[],
    options: { loadTimeoutMs?: number },
  ): Promise<AdapterCandidate[]> {
    return discoverAdapterPackages(fromDirs, options);
  }

  /** By name: adapters have no priority, the caller names one. */
  protected compare(a: AdapterCandidate, b: AdapterCandidate): number {
    return a.name.localeCompare(b.name);
  }

  /** Probes every candidate for these options, concurrently. Never throws. */
  probeAll(options: AdapterOptions): Promise<ProbedAdapter[]> {
    return this.probeEach((p) => p.probe(options), options.config.probeTimeoutMs);
  }

  /**
   * Opens the named adapter: it must be installed and its probe must say it is available for
   * these options. Throws NoAdapterError with every candidate's reason, or AdapterError when
   * the provider makes something that is not an Adapter.
   */
  async create(name: string, options: AdapterOptions): Promise<Adapter> {
    const probed = await this.probeAll(options);
    const provider = chooseAdapter(probed, name).provider;
    const adapter = await provider.create(options);
    const missing = ADAPTER_METHODS.filter(
      (m) => typeof (adapter as unknown as Record<string, unknown>)?.[m] !== 'function',
    );
    if (missing.length > 0) {
      throw new AdapterError(
        `adapter ${JSON.stringify(name)}: create() returned an object without ${missing.join(', ')}; it must implement the Adapter contract`,
        { code: 'HW_ADAPTER_INVALID' },
      );
    }
    return adapter;
  }
}

/** The named adapter among probed candidates; it must be available. Throws NoAdapterError. */
export function chooseAdapter(
  probed: readonly ProbedAdapter[],
  name: string,
): ProbedAdapter & { provider: AdapterProvider } {
  const reasons = Object.fromEntries(
    probed.map((p) => [p.name, p.result.available ? 'available' : p.result.reason] as const),
  );
  const hit = probed.find((p) => p.name === name);
  if (!hit) {
    throw new NoAdapterError(
      `adapter ${JSON.stringify(name)} is not installed (\`hotweights adapters\` lists what is)`,
      reasons,
    );
  }
  if (!hit.result.available || !hit.provider) {
    throw new NoAdapterError(
      `adapter ${JSON.stringify(name)} is unavailable: ${hit.result.available ? 'not loaded' : hit.result.reason}`,
      reasons,
    );
  }
  return { ...hit, provider: hit.provider };
}
