/**
 * What the TransportManager and the AdapterManager share: providers by name, registered in code
 * or discovered in installed packages, listed in the kind's order and probed under a deadline.
 */
import { mergeDiscovered, type PluginCandidate, probeCandidates } from './plugin-discovery.js';
import type { ProbeResult } from './transport.js';

export abstract class PluginRegistry<
  P extends { readonly name: string; readonly version?: string },
  C extends PluginCandidate<P>,
> {
  readonly #candidates = new Map<string, C>();
  protected readonly probeTimeoutMs: number | undefined;

  constructor(probeTimeoutMs: number | undefined) {
    this.probeTimeoutMs = probeTimeoutMs;
  }

  protected abstract isProvider(value: unknown): value is P;
  /** The error for a registration that does not keep the kind's contract. */
  protected abstract invalidProvider(): Error;
  protected abstract candidateOf(provider: P, origin: string, version: string | undefined): C;
  /** Installed packages of this kind visible from `fromDirs`, the first directory's first. */
  protected abstract findInstalled(
    fromDirs: readonly string[],
    options: { loadTimeoutMs?: number },
  ): Promise<C[]>;
  /** Listing order. */
  protected abstract compare(a: C, b: C): number;

  /**
   * Registers a provider in code. A later registration of the same name replaces the earlier.
   * `version` is what listings show when the provider has none (built-ins: core's version).
   */
  register(provider: P, origin = 'builtin', version = provider?.version): void {
    if (!this.isProvider(provider)) throw this.invalidProvider();
    this.#candidates.set(provider.name, this.candidateOf(provider, origin, version));
  }

  /**
   * Adds installed packages. In-code registrations keep precedence, and so does what an earlier
   * call, or an earlier directory of this call, found (the application's directory first). One
   * call with several directories reads each `node_modules` folder they share once.
   */
  async discover(...fromDirs: string[]): Promise<C[]> {
    const found = await this.findInstalled(fromDirs, { loadTimeoutMs: this.probeTimeoutMs });
    mergeDiscovered(this.#candidates, found);
    return found;
  }

  candidates(): C[] {
    return [...this.#candidates.values()].sort((a, b) => this.compare(a, b));
  }

  /** Probes every candidate concurrently (deadline: the manager's, else `defaultTimeoutMs`). */
  protected probeEach(
    probe: (provider: P) => Promise<ProbeResult>,
    defaultTimeoutMs: number,
  ): Promise<(C & { readonly result: ProbeResult; readonly probeMs: number })[]> {
    return probeCandidates(this.candidates(), probe, this.probeTimeoutMs ?? defaultTimeoutMs);
  }
}
