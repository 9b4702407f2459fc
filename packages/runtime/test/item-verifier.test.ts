/**
 * The item verifier on a tensor split across three buckets: its hash (sha256 from node:crypto,
 * not our hashers) is checked once every part has landed, in part order whatever order the
 * buckets land in; a part that never lands fails `finish`; no bucket holding a part counts as
 * verified before the whole tensor does.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { PlanBucket, PlanItem } from '@hotweights/core';
import { VerificationError } from '@hotweights/core';
import { describe, expect, it } from 'vitest';
import { ItemVerifier } from '../src/item-verifier.js';

const PART = 1000;
const tensor = randomBytes(3 * PART);
const whole = `sha256:${createHash('sha256').update(tensor).digest('hex')}`;

/** Bucket i holds part i of the tensor at offset 64, after a small whole file at offset 0. */
function bucket(i: number): { bucket: PlanBucket; bytes: Uint8Array } {
  const file = randomBytes(48);
  const fileItem: PlanItem = {
    key: `f${i}.bin:0`,
    tensor: `f${i}.bin`,
    shard_rank: 0,
    kind: 'file',
    nbytes: file.length,
    hash: `sha256:${createHash('sha256').update(file).digest('hex')}`,
    uri: `f${i}.bin`,
    file_offset: 0,
    dtype: null,
    shape: null,
    offset: 0,
  };
  const part: PlanItem = {
    key: 'layers.0.w:0',
    tensor: 'layers.0.w',
    shard_rank: 0,
    kind: 'tensor',
    nbytes: PART,
    hash: whole,
    uri: 'model.safetensors',
    file_offset: 8 + i * PART,
    dtype: 'U8',
    shape: [3 * PART],
    offset: 64,
    part: { index: i, count: 3, tensor_offset: i * PART, tensor_nbytes: 3 * PART },
  };
  const bytes = new Uint8Array(64 + PART);
  bytes.set(file, 0);
  bytes.set(tensor.subarray(i * PART, (i + 1) * PART), 64);
  return {
    bucket: { bucket_id: i, size: bytes.length, consumer_ranks: [0], items: [fileItem, part] },
    bytes,
  };
}

describe('a tensor split across buckets', () => {
  it('is verified once all parts landed, in part order, whatever order the buckets land in', async () => {
    const v = new ItemVerifier(0);
    const [b0, b1, b2] = [bucket(0), bucket(1), bucket(2)];
    expect(await v.bucketLanded(b2.bucket, b2.bytes)).toEqual([]);
    expect(await v.bucketLanded(b0.bucket, b0.bytes)).toEqual([]);
    // The last part completes the tensor: all three buckets are verified at once.
    expect((await v.bucketLanded(b1.bucket, b1.bytes)).sort()).toEqual([0, 1, 2]);
    expect(v.verified).toBe(4); // three whole files and the tensor
    expect(() => v.finish()).not.toThrow();
  });

  it('fails finish when a part never landed, naming the tensor and the count', async () => {
    const v = new ItemVerifier(3);
    for (const i of [0, 2]) {
      const b = bucket(i);
      expect(await v.bucketLanded(b.bucket, b.bytes)).toEqual([]);
    }
    let failure: unknown;
    try {
      v.finish();
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(VerificationError);
    expect((failure as Error).message).toBe('rank 3: item layers.0.w:0: only 2 of 3 parts landed');
  });

  it('refuses a tensor whose parts are whole but one byte of one part is wrong', async () => {
    let failures = 0;
    const v = new ItemVerifier(1, () => failures++);
    const [b0, b1, b2] = [bucket(0), bucket(1), bucket(2)];
    b1.bytes[64 + 500] = (b1.bytes[64 + 500] as number) ^ 1;
    await v.bucketLanded(b0.bucket, b0.bytes);
    await v.bucketLanded(b2.bucket, b2.bytes);
    await expect(v.bucketLanded(b1.bucket, b1.bytes)).rejects.toThrow(
      /rank 1: item layers\.0\.w:0 \(model\.safetensors, bucket 1\) does not match its hash: expected sha256:/,
    );
    expect(failures).toBe(1);
  });
});

describe('what a failed or empty bucket reports', () => {
  it('an empty bucket is verified as it lands (its memory can be handed on)', async () => {
    const v = new ItemVerifier(0);
    const empty: PlanBucket = { bucket_id: 7, size: 0, consumer_ranks: [0], items: [] };
    expect(await v.bucketLanded(empty, new Uint8Array(0))).toEqual([7]);
    expect(v.verified).toBe(0);
  });

  it('a mismatch without a failure callback still throws the verification error, with its details', async () => {
    const v = new ItemVerifier(2);
    const b = bucket(0);
    b.bytes[3] = (b.bytes[3] as number) ^ 0x40;
    const landed = Buffer.from(b.bytes.subarray(0, 48));
    let failure: unknown;
    try {
      await v.bucketLanded(b.bucket, b.bytes);
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(VerificationError);
    expect((failure as VerificationError).details).toEqual({
      rank: 2,
      key: 'f0.bin:0',
      bucket: 0,
      expected: b.bucket.items[0]?.hash,
      got: `sha256:${createHash('sha256').update(landed).digest('hex')}`,
    });
  });

  it('a missing part names the rank and the tensor in the error details (for --json output)', async () => {
    const v = new ItemVerifier(5);
    const b = bucket(1);
    await v.bucketLanded(b.bucket, b.bytes);
    let failure: unknown;
    try {
      v.finish();
    } catch (err) {
      failure = err;
    }
    expect((failure as VerificationError).details).toEqual({ rank: 5, key: 'layers.0.w:0' });
  });
});
