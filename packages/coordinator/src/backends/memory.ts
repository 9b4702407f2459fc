/** The embedded backend: state lives as long as the coordinator process. */
import type { StateBackend } from './backend.js';

interface Slot {
  readonly json: string;
  readonly expiresAt: number;
}

export class MemoryBackend implements StateBackend {
  readonly kind = 'memory' as const;
  readonly #slots = new Map<string, Slot>();

  #live(key: string): Slot | undefined {
    const slot = this.#slots.get(key);
    if (slot && slot.expiresAt <= Date.now()) {
      this.#slots.delete(key);
      return undefined;
    }
    return slot;
  }

  async get<T>(key: string): Promise<T | undefined> {
    const slot = this.#live(key);
    // Values are stored as JSON so a caller can never mutate what the backend holds.
    return slot ? (JSON.parse(slot.json) as T) : undefined;
  }

  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    const expiresAt = ttlMs === undefined ? Number.POSITIVE_INFINITY : Date.now() + ttlMs;
    this.#slots.set(key, { json: JSON.stringify(value), expiresAt });
  }

  async delete(key: string): Promise<void> {
    this.#slots.delete(key);
  }

  async entries<T>(prefix: string): Promise<Array<[string, T]>> {
    const out: Array<[string, T]> = [];
    for (const key of [...this.#slots.keys()]) {
      if (!key.startsWith(prefix)) continue;
      const slot = this.#live(key);
      if (slot) out.push([key, JSON.parse(slot.json) as T]);
    }
    return out;
  }

  async close(): Promise<void> {
    this.#slots.clear();
  }
}
