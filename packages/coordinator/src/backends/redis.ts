/**
 * Redis backend (HOTWEIGHTS_COORD_BACKEND=redis): every key lives under a namespace prefix, TTLs
 * become Redis PX expiries, so a coordinator restarted against the same Redis finds its workers,
 * plans, update state and handles where it left them.
 */
import { CoordinatorError } from '@hotweights/core';
import type { Redis } from 'ioredis';
import type { StateBackend } from './backend.js';

export interface RedisBackendOptions {
  readonly url: string;
  /** Key prefix, so several coordinators can share one Redis. */
  readonly namespace?: string;
  readonly connectTimeoutMs?: number;
}

/** The URL without its password, for messages. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(unparseable redis url)';
  }
}

export class RedisBackend implements StateBackend {
  readonly kind = 'redis' as const;
  readonly #redis: Redis;
  readonly #ns: string;

  private constructor(redis: Redis, ns: string) {
    this.#redis = redis;
    this.#ns = ns;
  }

  static async connect(options: RedisBackendOptions): Promise<RedisBackend> {
    // Loaded here, not at the top: ioredis costs ~0.2 s to import, and every CLI command loads
    // this package while only a coordinator with the Redis backend needs it.
    const { Redis } = await import('ioredis');
    const redis = new Redis(options.url, {
      lazyConnect: true,
      connectTimeout: options.connectTimeoutMs ?? 5000,
      maxRetriesPerRequest: 3,
      // Keep reconnecting (a Redis restart must not kill the coordinator), but not too eagerly.
      retryStrategy: (times) => Math.min(times * 100, 2000),
    });
    redis.on('error', () => {
      // Errors surface on the commands that fail; without a listener ioredis prints them.
    });
    try {
      await redis.connect();
    } catch (err) {
      redis.disconnect();
      throw new CoordinatorError(
        'HW_COORD_BACKEND',
        `cannot connect to Redis at ${redactRedisUrl(options.url)}: ${(err as Error).message}`,
        { cause: err },
      );
    }
    return new RedisBackend(redis, options.namespace ?? 'hotweights:coord:');
  }

  async get<T>(key: string): Promise<T | undefined> {
    const text = await this.#redis.get(this.#ns + key);
    return text === null ? undefined : (JSON.parse(text) as T);
  }

  async set(key: string, value: unknown, ttlMs?: number): Promise<void> {
    const text = JSON.stringify(value);
    if (ttlMs === undefined) await this.#redis.set(this.#ns + key, text);
    else await this.#redis.set(this.#ns + key, text, 'PX', Math.max(1, Math.ceil(ttlMs)));
  }

  async delete(key: string): Promise<void> {
    await this.#redis.del(this.#ns + key);
  }

  async entries<T>(prefix: string): Promise<Array<[string, T]>> {
    const keys: string[] = [];
    let cursor = '0';
    const pattern = `${escapeGlob(this.#ns + prefix)}*`;
    do {
      const [next, batch] = await this.#redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
      cursor = next;
      keys.push(...batch);
    } while (cursor !== '0');
    if (keys.length === 0) return [];
    const unique = [...new Set(keys)];
    const values = await this.#redis.mget(...unique);
    const out: Array<[string, T]> = [];
    unique.forEach((k, i) => {
      const text = values[i];
      if (text !== null && text !== undefined) out.push([k.slice(this.#ns.length), JSON.parse(text) as T]);
    });
    return out;
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}

function escapeGlob(s: string): string {
  return s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);
}
