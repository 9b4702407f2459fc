/**
 * The in-flight window: at most `maxBuckets` buckets and `maxBytes` bytes (0 = no byte cap) at
 * once, so reading, sending and landing overlap without unbounded memory. One bucket is always
 * admitted even if it alone exceeds the byte cap.
 */
export class ReplicationWindow {
  private buckets = 0;
  private bytes = 0;
  private readonly queue: { size: number; admit: () => void }[] = [];

  constructor(
    readonly maxBuckets: number,
    readonly maxBytes: number,
    private readonly onChange?: (buckets: number, bytes: number) => void,
  ) {}

  get inFlightBuckets(): number {
    return this.buckets;
  }

  get inFlightBytes(): number {
    return this.bytes;
  }

  private fits(size: number): boolean {
    if (this.buckets === 0) return true;
    if (this.buckets >= this.maxBuckets) return false;
    return this.maxBytes <= 0 || this.bytes + size <= this.maxBytes;
  }

  /** Resolves when the bucket may start; rejects if `signal` aborts first. */
  acquire(size: number, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    if (this.queue.length === 0 && this.fits(size)) {
      this.take(size);
      return Promise.resolve();
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        size,
        admit: () => {
          signal?.removeEventListener('abort', onAbort);
          this.take(size);
          resolve();
        },
      };
      const onAbort = () => {
        const i = this.queue.indexOf(entry);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal?.reason);
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
    });
  }

  release(size: number): void {
    this.buckets--;
    this.bytes -= size;
    this.onChange?.(this.buckets, this.bytes);
    // Admit in order: a big bucket waiting at the head is not overtaken by small ones.
    while (this.queue.length > 0 && this.fits((this.queue[0] as { size: number }).size)) {
      (this.queue.shift() as { admit: () => void }).admit();
    }
  }

  private take(size: number): void {
    this.buckets++;
    this.bytes += size;
    this.onChange?.(this.buckets, this.bytes);
  }
}
