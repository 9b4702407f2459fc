/**
 * Token check for mutating RPCs. Both sides are hashed first so the comparison runs over equal
 * lengths in constant time (timingSafeEqual), whatever the caller sent. The token itself is kept
 * only as its hash: it cannot leak into a status reply, an event, a log line or a metric.
 */
import { createHash, timingSafeEqual } from 'node:crypto';

export class TokenGuard {
  readonly #expected: Buffer | undefined;

  constructor(token: string | undefined) {
    this.#expected = token ? digest(token) : undefined;
  }

  get enabled(): boolean {
    return this.#expected !== undefined;
  }

  /** True when no token is configured, or when `given` matches it. */
  allows(given: string | undefined): boolean {
    if (!this.#expected) return true;
    // Hash even a missing token so a refusal takes the same time either way.
    const candidate = digest(given ?? '');
    return timingSafeEqual(candidate, this.#expected) && given !== undefined;
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}
