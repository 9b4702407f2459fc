/**
 * TransportManager: registration, discovery of installed transport packages, probing and
 * selection. Selection is by priority (cuda-ipc > nccl > mpi > ucx > local) among available
 * transports, unless a name is forced (`--transport` / HOTWEIGHTS_TRANSPORT).
 */

import { NoTransportError, TransportError } from './errors.js';
import { discoverPlugins, isPluginName, type PluginCandidate, type PluginKind } from './plugin-discovery.js';
import { PluginRegistry } from './plugin-registry.js';
import type { ProbeContext, ProbeResult, TransportProvider } from './transport.js';

/** Default priorities of the transports this project ships. */
export const BUILTIN_PRIORITIES: Readonly<Record<string, number>> = Object.freeze({
  'cuda-ipc': 50,
  nccl: 40,
  mpi: 30,
  ucx: 20,
  local: 10,
});

export const TRANSPORT_KEYWORD = 'hotweights-transport';

export interface TransportCandidate extends PluginCandidate<TransportProvider> {
  readonly priority: number;
}

export interface ProbedCandidate extends TransportCandidate {
  readonly result: ProbeResult;
  readonly probeMs: number;
}

function isProvider(value: unknown): value is TransportProvider {
  if (value === null || typeof value !== 'object') return false;
  const v = value as Record<string, unknown>;
  return (
    isPluginName(v.name) &&
    typeof v.priority === 'number' &&
    Number.isFinite(v.priority) &&
    typeof v.probe === 'function' &&
    typeof v.create === 'function'
  );
}

const TRANSPORT_PLUGINS: PluginKind<TransportProvider> = {
  keyword: TRANSPORT_KEYWORD,
  field: 'transport',
  contract: 'TransportProvider',
  isProvider,
  fallbackName: (pkg) => pkg.replace(/^@[^/]+\//, '').replace(/^(hotweights-)?transport-/, ''),
};

/**
 * Finds installed transport packages visible from `fromDir`, or from each of several (as Node
 * resolution would see them): packages whose package.json has the keyword `hotweights-transport`.
 */
export async function discoverTransportPackages(
  fromDir: string | readonly string[],
  options: { loadTimeoutMs?: number } = {},
): Promise<TransportCandidate[]> {
  const found = await discoverPlugins(TRANSPORT_PLUGINS, fromDir, options);
  return found.map((c) => ({ ...c, priority: c.provider?.priority ?? 0 }));
}

export interface TransportManagerOptions {
  readonly providers?: readonly TransportProvider[];
  /** Probe deadline per transport; defaults to config.probeTimeoutMs. */
  readonly probeTimeoutMs?: number;
}

export class TransportManager extends PluginRegistry<TransportProvider, TransportCandidate> {
  constructor(options: TransportManagerOptions = {}) {
    super(options.probeTimeoutMs);
    for (const p of options.providers ?? []) this.register(p);
  }

  protected isProvider(value: unknown): value is TransportProvider {
    return isProvider(value);
  }

  protected invalidProvider(): Error {
    return new TransportError(
      'register: expected a TransportProvider {name, priority, probe(), create()} with a lowercase name',
      { code: 'HW_TRANSPORT_INVALID' },
    );
  }

  protected candidateOf(provider: TransportProvider, origin: string, version: string | undefined) {
    return {
      name: provider.name,
      priority: provider.priority,
      version,
      origin,
      provider,
      loadError: undefined,
    };
  }

  protected findInstalled(
    fromDirs: readonly string[],
    options: { loadTimeoutMs?: number },
  ): Promise<TransportCandidate[]> {
    return discoverTransportPackages(fromDirs, options);
  }

  /** Highest priority first. */
  protected compare(a: TransportCandidate, b: TransportCandidate): number {
    return b.priority - a.priority || a.name.localeCompare(b.name);
  }

  /** Probes every candidate concurrently. Never throws. */
  probeAll(ctx: ProbeContext): Promise<ProbedCandidate[]> {
    return this.probeEach((p) => p.probe(ctx), ctx.config.probeTimeoutMs);
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

/** A transport chosen for a fleet, and why (one line `hotweights transports` and workers print). */
export interface FleetChoice {
  readonly candidate: ProbedCandidate & { provider: TransportProvider };
  readonly why: string;
}

/**
 * The selection rule for a fleet whose ranks sit on the nodes `nodeIds` (one per rank, as the
 * workers reported them): every rank applies it to the same node ids, so they agree. A forced
 * name wins; ranks on one node keep `local` (shared memory, the fastest path); ranks on several
 * nodes take the best available transport that spans hosts (mpi under mpirun, else ucx).
 */
export function chooseTransportForFleet(
  probed: readonly ProbedCandidate[],
  nodeIds: readonly string[],
  forced: string | undefined,
): FleetChoice {
  const nodes = [...new Set(nodeIds)].sort();
  const where =
    nodes.length === 1
      ? `all ${nodeIds.length} rank(s) on node ${nodes[0]}`
      : `ranks on ${nodes.length} nodes (${nodes.join(', ')})`;
  if (forced) {
    const candidate = chooseTransport(probed, forced);
    return { candidate, why: `${forced}: forced (--transport or HOTWEIGHTS_TRANSPORT); ${where}` };
  }
  if (nodes.length <= 1) {
    const local = probed.find((p) => p.name === 'local' && p.result.available && p.provider);
    if (local?.provider) {
      return {
        candidate: { ...local, provider: local.provider },
        why: `local: ${where}, shared memory is the fastest path`,
      };
    }
    const candidate = chooseTransport(probed, undefined);
    return {
      candidate,
      why: `${candidate.name}: ${where} and local is unavailable; highest priority available`,
    };
  }
  const spanning = probed.filter((p) => p.provider?.spansHosts);
  const best = spanning.find((p) => p.result.available && p.provider);
  if (best?.provider) {
    const passed = spanning
      .slice(0, spanning.indexOf(best))
      .map((p) => `${p.name}: ${p.result.available ? 'unavailable' : p.result.reason}`);
    return {
      candidate: { ...best, provider: best.provider },
      why: `${best.name}: ${where} need a transport that spans hosts${passed.length ? ` (${passed.join('; ')})` : ''}`,
    };
  }
  const reasons = Object.fromEntries(
    probed.map((p) => [p.name, p.result.available ? 'available' : p.result.reason] as const),
  );
  const why = spanning.length
    ? spanning.map((p) => `${p.name}: ${p.result.available ? 'not loaded' : p.result.reason}`).join('; ')
    : 'none is installed (install @hotweights/transport-ucx)';
  throw new NoTransportError(`${where} but no transport that spans hosts is available: ${why}`, reasons);
}
