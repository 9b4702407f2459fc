/**
 * A byte budget shared by the sends of every broadcast on a rank (HOTWEIGHTS_UCX_INFLIGHT_LIMIT_MB),
 * granted first come, first served. An empty budget always admits one request, whatever its size,
 * so a chunk larger than the cap still moves. Only sends wait on it: receives are always posted,
 * so every granted send finds its receiver and the budget cannot deadlock the chain.
 */
export class ByteBudget {
  readonly #limit: number;
  #used = 0;
  readonly #waiting: { bytes: number; grant: () => void }[] = [];

  /** `limit` 0 means no cap. */
  constructor(limit: number) {
    this.#limit = limit;
  }

  acquire(bytes: number): Promise<void> {
    if (this.#waiting.length === 0 && this.#fits(bytes)) {
      this.#used += bytes;
      return Promise.resolve();
    }
    return new Promise((grant) => this.#waiting.push({ bytes, grant }));
  }

  release(bytes: number): void {
    this.#used -= bytes;
    for (let next = this.#waiting[0]; next && this.#fits(next.bytes); next = this.#waiting[0]) {
      this.#waiting.shift();
      this.#used += next.bytes;
      next.grant();
    }
  }

  #fits(bytes: number): boolean {
    return this.#limit === 0 || this.#used === 0 || this.#used + bytes <= this.#limit;
  }
}
