/**
 * Checks landed items against their plan hashes. Whole items are checked as their bucket lands;
 * the parts of a split tensor are kept until every part has landed, then hashed in order. Each
 * call reports which buckets became fully verified, so their memory can be handed on and reused
 * (a bucket holding a part stays pending until the whole tensor checked out). With a VerifyPool
 * the hashing runs on worker threads, several items at once.
 */

import type { PlanBucket, PlanItem } from '@hotweights/core';
import { VerificationError } from '@hotweights/core';
import { parseItemHash } from '@hotweights/manifest';
import { type FileRange, type HashInput, hashHere, type VerifyPool } from './verify-pool.js';

interface Part {
  readonly item: PlanItem;
  readonly bytes: HashInput;
  readonly bucketId: number;
}

export class ItemVerifier {
  private readonly parts = new Map<string, Part[]>();
  /** Bucket id -> items of it not verified yet. */
  private readonly unverified = new Map<number, number>();
  /** Items whose hash matched. */
  verified = 0;

  constructor(
    private readonly rank: number,
    private readonly onFailure?: () => void,
    private readonly pool?: VerifyPool,
  ) {}

  /**
   * Verifies every whole item of a landed bucket and collects split parts. Throws on a mismatch.
   * Returns the ids of the buckets that are now entirely verified (this one and any earlier one
   * whose last pending part was completed by it).
   */
  bucketLanded(bucket: PlanBucket, bytes: Uint8Array): Promise<number[]> {
    return this.landed(bucket, (item) => bytes.subarray(item.offset, item.offset + item.nbytes));
  }

  /**
   * As `bucketLanded`, for a bucket whose items landed in files instead of a buffer: `ranges[i]`
   * is where item i of the bucket is (`item.nbytes` bytes from there).
   */
  bucketLandedInFiles(bucket: PlanBucket, ranges: readonly Omit<FileRange, 'length'>[]): Promise<number[]> {
    let i = 0;
    return this.landed(bucket, (item) => {
      const r = ranges[i++] as Omit<FileRange, 'length'>;
      return { path: r.path, offset: r.offset, length: item.nbytes };
    });
  }

  /** `where(item)` is called once per item, in bucket order. */
  private async landed(bucket: PlanBucket, where: (item: PlanItem) => HashInput): Promise<number[]> {
    const done: number[] = [];
    const settle = (id: number) => {
      const left = (this.unverified.get(id) ?? 1) - 1;
      if (left > 0) this.unverified.set(id, left);
      else {
        this.unverified.delete(id);
        done.push(id);
      }
    };
    if (bucket.items.length === 0) return [bucket.bucket_id];
    this.unverified.set(bucket.bucket_id, bucket.items.length);
    const checks: Promise<void>[] = [];
    for (const item of bucket.items) {
      const view = where(item);
      if (!item.part || item.part.count === 1) {
        checks.push(this.check(item, [view], bucket.bucket_id).then(() => settle(bucket.bucket_id)));
        continue;
      }
      const got = this.parts.get(item.key) ?? [];
      got.push({ item, bytes: view, bucketId: bucket.bucket_id });
      this.parts.set(item.key, got);
      if (got.length === item.part.count) {
        this.parts.delete(item.key);
        got.sort((a, b) => (a.item.part?.index ?? 0) - (b.item.part?.index ?? 0));
        checks.push(
          this.check(
            item,
            got.map((g) => g.bytes),
            bucket.bucket_id,
          ).then(() => {
            for (const g of got) settle(g.bucketId);
          }),
        );
      }
    }
    await Promise.all(checks);
    return done;
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

  private async check(item: PlanItem, chunks: readonly HashInput[], bucketId: number): Promise<void> {
    // A patch item's landed bytes are the patch: checked against the patch's own hash here, and
    // the tensor rebuilt from it against item.hash before the adapter takes it (patch-landing.ts).
    const expected = item.patch?.hash ?? item.hash;
    const { algo, hex } = parseItemHash(expected, item.key);
    const got = this.pool ? await this.pool.hash(algo, chunks) : hashHere(algo, chunks);
    if (got !== hex) {
      this.onFailure?.();
      throw new VerificationError(
        `rank ${this.rank}: ${item.patch ? 'patch of ' : ''}item ${item.key} (${item.uri}, bucket ${bucketId}) does not match its hash: expected ${expected}, landed ${algo}:${got} (if the checkpoint changed after it was published, publish and plan it again)`,
        {
          details: {
            rank: this.rank,
            key: item.key,
            bucket: bucketId,
            expected,
            got: `${algo}:${got}`,
          },
        },
      );
    }
    this.verified++;
  }
}
