/**
 * The in-memory adapter: keeps each version's items (by key) in process memory. For tests, the
 * demo and verify-only runs. Deltas build on the current version: unchanged items are shared,
 * staged items are copied out of staging, removed keys are dropped.
 */
import type { Adapter, AdapterUpdate } from '@hotweights/core';
import { AdapterError, stagedItems } from '@hotweights/core';

export class MemoryAdapter implements Adapter {
  readonly name = 'memory';
  private readonly versions = new Map<string, Map<string, Uint8Array>>();
  private current: string | null = null;
  private previous: string | null = null;
  private readonly partial: boolean;

  /**
   * `partial`: accept a delta with nothing live and keep only the staged items (verify-only runs
   * of `hotweights replicate` without a target).
   */
  constructor(options: { readonly partial?: boolean } = {}) {
    this.partial = options.partial ?? false;
  }

  async currentVersion(): Promise<string | null> {
    return this.current;
  }

  async previousVersion(): Promise<string | null> {
    return this.previous;
  }

  async prepare(update: AdapterUpdate): Promise<void> {
    const { plan } = update;
    const partialBase = this.partial && this.current === null;
    if (plan.prev_version !== null && plan.prev_version !== this.current && !partialBase) {
      throw new AdapterError(
        `plan ${plan.version} is a delta from ${plan.prev_version}, but the live version is ${this.current ?? 'none'}; make a full plan (no --prev) or deploy ${plan.prev_version} first`,
      );
    }
    const base =
      plan.prev_version === null || partialBase
        ? new Map()
        : new Map(this.versions.get(this.current as string));
    for (const key of plan.removed) base.delete(key);
    for (const [key, staged] of stagedItems(plan, update.staging)) {
      const bytes = new Uint8Array(staged.nbytes);
      for (const c of staged.chunks) bytes.set(c.bytes, c.at);
      base.set(key, bytes);
    }
    this.versions.set(plan.version, base);
  }

  async hasVersion(version: string): Promise<boolean> {
    return this.versions.has(version);
  }

  async commit(version: string): Promise<void> {
    if (!this.versions.has(version)) throw new AdapterError(`version ${version} was not prepared`);
    if (version === this.current) return;
    this.previous = this.current;
    this.current = version;
    for (const v of [...this.versions.keys()])
      if (v !== this.current && v !== this.previous) this.versions.delete(v);
  }

  async abort(version: string): Promise<void> {
    if (version !== this.current && version !== this.previous) this.versions.delete(version);
  }

  async rollback(): Promise<string> {
    if (this.previous === null)
      throw new AdapterError('nothing to roll back to: no previous version is kept');
    [this.current, this.previous] = [this.previous, this.current];
    return this.current as string;
  }

  /** The live version's bytes of `key` (what patch items apply to), or null. */
  async liveItem(key: string): Promise<Uint8Array | null> {
    return this.read(key) ?? null;
  }

  /** Bytes of an item of the live version (or of `version`). */
  read(key: string, version = this.current): Uint8Array | undefined {
    return version === null ? undefined : this.versions.get(version)?.get(key);
  }

  /** Keys of the live version (or of `version`). */
  keys(version = this.current): string[] {
    return version === null ? [] : [...(this.versions.get(version)?.keys() ?? [])];
  }
}
