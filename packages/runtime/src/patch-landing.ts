/**
 * Landing patch items (issue #16): once a bucket's bytes are verified as they arrived (each patch
 * against its own hash), every patch item in it is rebuilt into the whole new tensor from the
 * adapter's live bytes of that tensor, and the result must match the new version's hash (which
 * it does exactly when the live bytes were the patch's recorded base; when not, the base is
 * hashed to say so). Adapters then receive an ordinary bucket of whole tensors;
 * reconstruction happens here, once, for every adapter that can hand over its live bytes
 * (`Adapter.liveItem`). Any mismatch throws before the adapter sees the bucket, so nothing commits.
 */
import {
  type Adapter,
  AdapterError,
  type Plan,
  type PlanBucket,
  type PlanItem,
  type StagedBucket,
  type StagingAgent,
  VerificationError,
} from '@hotweights/core';
import { applyPatch, hashItem, parseItemHash } from '@hotweights/manifest';

/** Whether any item of the plan is a patch. */
export function planHasPatches(plan: Plan): boolean {
  return plan.buckets.some((b) => b.items.some((it) => it.patch !== undefined));
}

/**
 * Rebuilt bytes handed on together (a quarter of the bucket, at most this) while the next tensors
 * are rebuilt: the adapter's writes then overlap the rebuilding instead of starting after it.
 */
const PART_BYTES = 16 << 20;

export class PatchLanding {
  /** Tensors rebuilt so far. */
  rebuilt = 0;

  constructor(
    private readonly plan: Plan,
    private readonly adapter: Adapter,
    private readonly rank: number,
  ) {
    if (!adapter.liveItem)
      throw new AdapterError(
        `rank ${rank}: plan ${plan.version} has patch items, but the ${adapter.name} adapter cannot hand over its live bytes to apply them to: plan without --patches`,
      );
  }

  /**
   * The bucket with each patch item replaced by the whole tensor it rebuilds (others copied).
   * With `handOn`, parts of it (the same bucket, some of its items, in the returned bytes) are
   * handed on as soon as their tensors are rebuilt, and it resolves once every part was taken.
   */
  async expand(
    bucket: PlanBucket,
    bytes: Uint8Array,
    handOn?: (part: PlanBucket, bytes: Uint8Array) => Promise<void>,
  ): Promise<{ bucket: PlanBucket; bytes: Uint8Array }> {
    if (!bucket.items.some((it) => it.patch)) {
      await handOn?.(bucket, bytes);
      return { bucket, bytes };
    }
    const align = Math.max(1, this.plan.alignment);
    const items: PlanItem[] = [];
    let size = 0;
    for (const it of bucket.items) {
      const { patch, ...rest } = it;
      const offset = Math.ceil(size / align) * align;
      const nbytes = patch ? patch.tensor_nbytes : it.nbytes;
      items.push({ ...rest, offset, nbytes });
      size = offset + nbytes;
    }
    const out = new Uint8Array(size);
    const whole = { ...bucket, size, items };
    const parts: Promise<void>[] = [];
    const partSize = Math.min(PART_BYTES, Math.ceil(size / 4));
    let part: PlanItem[] = [];
    let partBytes = 0;
    const flush = () => {
      if (!handOn || part.length === 0) return;
      const handed = handOn({ ...whole, items: part }, out);
      handed.catch(() => {}); // awaited below; a rebuild failing first must not leave it unheard
      parts.push(handed);
      part = [];
      partBytes = 0;
    };
    try {
      for (const [k, it] of bucket.items.entries()) {
        const place = items[k] as PlanItem;
        const landed = bytes.subarray(it.offset, it.offset + it.nbytes);
        // Patches rebuild straight into the bucket handed on: no tensor is copied twice.
        if (it.patch) await this.rebuild(it, landed, out.subarray(place.offset, place.offset + place.nbytes));
        else out.set(landed, place.offset);
        part.push(place);
        partBytes += place.nbytes;
        if (partBytes >= partSize) flush();
      }
      flush();
    } catch (err) {
      // What was handed on settles before the caller discards the preparation it went into.
      await Promise.allSettled(parts);
      throw err;
    }
    await Promise.all(parts);
    return { bucket: whole, bytes: out };
  }

  /** Rebuilds the new tensor of a patch item into `into` (its whole size). */
  private async rebuild(item: PlanItem, patchBytes: Uint8Array, into: Uint8Array): Promise<void> {
    const p = item.patch as NonNullable<PlanItem['patch']>;
    const who = `rank ${this.rank}: item ${item.key} of ${this.plan.version}`;
    const live = (into?: Uint8Array) =>
      (this.adapter.liveItem as NonNullable<Adapter['liveItem']>).call(this.adapter, item.key, into);
    // Read straight into the rebuilt tensor's place when the adapter can: the patch then applies
    // in place (the base is hashed before anything overwrites it), sparing a copy of the tensor.
    const base = await live(into);
    if (!base)
      throw new VerificationError(
        `${who} is a patch against ${this.plan.prev_version ?? '(none)'}, but the live version has no ${item.key}: this rank needs a full update`,
        { details: { rank: this.rank, key: item.key } },
      );
    // With XOR the rebuilt tensor matches its hash exactly when the base was the patch's base (a
    // bijection), so the base is hashed only to say which went wrong. Runs overwrite only what
    // changed: a base that differs under a run would go unnoticed, so it is hashed first.
    if (p.encoding !== 'xor-brotli') this.checkBase(who, item, base);
    const algo = parseItemHash(item.hash, item.key).algo;
    let rebuilt: Uint8Array | undefined;
    let decodeError: unknown;
    try {
      rebuilt = applyPatch(p.encoding, base, patchBytes, p.tensor_nbytes, item.key, into);
    } catch (err) {
      decodeError = err;
    }
    const got = rebuilt ? hashItem(algo, [rebuilt]) : undefined;
    if (rebuilt && got === item.hash) {
      this.rebuilt++;
      return;
    }
    if (p.encoding === 'xor-brotli') {
      // Applied in place, the base is gone from `into`: the live bytes are read again to say why.
      const again = base === into ? await live() : base;
      if (again) this.checkBase(who, item, again);
    }
    if (decodeError)
      throw new VerificationError(
        `rank ${this.rank}: ${(decodeError as Error).message} (${this.plan.version})`,
        {
          cause: decodeError,
          details: { rank: this.rank, key: item.key },
        },
      );
    throw new VerificationError(
      `${who}: the tensor rebuilt from the patch does not match its hash (expected ${item.hash}, rebuilt ${got})`,
      { details: { rank: this.rank, key: item.key, expected: item.hash, got } },
    );
  }

  /** Throws when the live bytes are not the patch's recorded base. */
  private checkBase(who: string, item: PlanItem, base: Uint8Array): void {
    const p = item.patch as NonNullable<PlanItem['patch']>;
    const baseHash = hashItem(parseItemHash(p.base_hash, item.key).algo, [base]);
    if (baseHash !== p.base_hash)
      throw new VerificationError(
        `${who}: the live base does not match the patch's base (expected ${p.base_hash}, live ${baseHash}): this rank is not on the bytes of ${this.plan.prev_version ?? '(none)'} the plan was made against; plan against its live version or without --patches`,
        { details: { rank: this.rank, key: item.key, expected: p.base_hash, got: baseHash } },
      );
  }

  /**
   * For adapters that prepare from staging (no streaming): the plan with every consumed bucket
   * expanded, and a staging view that returns the expanded bytes for them.
   */
  async expandStaged(staging: StagingAgent, rank: number): Promise<{ plan: Plan; staging: StagingAgent }> {
    const { version } = this.plan;
    const expanded = new Map<number, { bucket: PlanBucket; bytes: Uint8Array }>();
    const restaged = new Map<number, PlanBucket>();
    for (const b of this.plan.buckets) {
      if (!b.consumer_ranks.includes(rank)) continue;
      const staged = staging.get(version, b.bucket_id);
      if (!staged) continue;
      const whole = await this.expand(b, staged.bytes);
      if (whole.bytes === staged.bytes || !staged.segment || !staging.drop) {
        expanded.set(b.bucket_id, whole);
        continue;
      }
      // Adapters of other processes (vLLM's workers) read staged segments, not this process's
      // memory: the rebuilt bucket replaces the patch bytes in staging.
      await staging.drop(version, b.bucket_id);
      const again = await staging.allocate(version, whole.bucket);
      again.bytes.set(whole.bytes);
      restaged.set(b.bucket_id, whole.bucket);
    }
    const plan: Plan = {
      ...this.plan,
      buckets: this.plan.buckets.map(
        (b) => expanded.get(b.bucket_id)?.bucket ?? restaged.get(b.bucket_id) ?? b,
      ),
    };
    const view: StagingAgent = {
      allocate: (v, b) => staging.allocate(v, b),
      get: (v, id): StagedBucket | undefined => {
        const e = v === version ? expanded.get(id) : undefined;
        return e ? { version: v, bucketId: id, bytes: e.bytes } : staging.get(v, id);
      },
      list: (v) => staging.list(v),
      release: (v) => staging.release(v),
      reclaimStale: () => staging.reclaimStale(),
    };
    return { plan, staging: view };
  }
}
