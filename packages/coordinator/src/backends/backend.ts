/**
 * Where the coordinator keeps its state. A small key-value contract (JSON values, optional TTL,
 * listing by prefix) so the same coordinator logic runs on memory (embedded, the default) or
 * Redis (survives a coordinator restart). The coordinator writes through on every change before it
 * replies, so whatever a client saw acknowledged is in the backend.
 */
export interface StateBackend {
  readonly kind: 'memory' | 'redis';
  get<T>(key: string): Promise<T | undefined>;
  /** Stores `value` (JSON-serialisable); with `ttlMs`, it disappears after that long. */
  set(key: string, value: unknown, ttlMs?: number): Promise<void>;
  delete(key: string): Promise<void>;
  /** Every live entry whose key starts with `prefix`. */
  entries<T>(prefix: string): Promise<Array<[string, T]>>;
  close(): Promise<void>;
}
