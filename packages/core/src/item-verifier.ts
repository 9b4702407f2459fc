/**
 * Checks landed items against their plan hashes. Whole items are checked as their bucket lands;
 * the parts of a split tensor are kept until every part has landed, then hashed in order.
 */
import { VerificationError } from './errors.js';
import { createItemHasher, parseItemHash } from './item-hash.js';
import type { PlanBucket, PlanItem } from './plan.js';

export class ItemVerifier {
  private readonly parts = new Map<string, { item: PlanItem; bytes: Uint8Array }[]>();
  /** Items whose hash matched. */
  verified = 0;

  constructor(
    private readonly rank: number,
    private readonly onFailure?: () => void,
  ) {}

  /** Verifies every whole item of a landed bucket and collects split parts. Throws on a mismatch. */
  bucketLanded(bucket: PlanBucket, bytes: Uint8Array): void {
    for (const item of bucket.items) {
      const view = bytes.subarray(item.offset, item.offset + item.nbytes);
      if (!item.part || item.part.count === 1) {
        this.check(item, [view], bucket.bucket_id);
        continue;
      }
      const got = this.parts.get(item.key) ?? [];
      got.push({ item, bytes: view });
      this.parts.set(item.key, got);
      if (got.length === item.part.count) {
        this.parts.delete(item.key);
        got.sort((a, b) => (a.item.part?.index ?? 0) - (b.item.part?.index ?? 0));
        this.check(
          item,
          got.map((g) => g.bytes),
          bucket.bucket_id,
        );
      }
    }
  }

  /** Throws when a split tensor is still missing parts (a bucket never landed). */
  finish(): void {
    for (const [key, got] of this.parts) {
      const count = got[0]?.item.part?.count ?? 0;
      throw new VerificationError(
        `rank ${this.rank}: item ${key}: only ${got.length} of ${count} parts landed`,
        { details: { rank: this.rank, key } },
      );
    }
  }

  private check(item: PlanItem, chunks: readonly Uint8Array[], bucketId: number): void {
    const { algo, hex } = parseItemHash(item.hash, item.key);
    const h = createItemHasher(algo);
    for (const c of chunks) h.update(c);
    const got = h.digestHex();
    if (got !== hex) {
      this.onFailure?.();
      throw new VerificationError(
        `rank ${this.rank}: item ${item.key} (${item.uri}, bucket ${bucketId}) does not match its hash: expected ${item.hash}, landed ${algo}:${got}`,
        {
          details: {
            rank: this.rank,
            key: item.key,
            bucket: bucketId,
            expected: item.hash,
            got: `${algo}:${got}`,
          },
        },
      );
    }
    this.verified++;
  }
}
