/**
 * A host copy of the live version's tensors (adapter option `live-copy=true`): what patch items
 * apply to. vLLM's live parameters are not the checkpoint's tensors (fused, sliced per TP rank,
 * re-laid or quantized after loading), so the bytes a patch was made against are kept here
 * instead: every tensor a committed update carried, taken from its verified staged buckets, and
 * for the tensors an update did not carry, those of the version before. One version back is kept
 * for rollback (the tensors the last commit replaced), as the workers keep theirs.
 *
 * A fresh adapter holds nothing: it learns the live version's tensors from the updates it lands,
 * so patches need a full update landed by this process first (a restarted worker catches up with
 * a full plan, as it does after a crash anyway).
 */
import { AdapterError, type Plan, type StagingAgent } from '@hotweights/core';

interface Pending {
  readonly version: string;
  /** A full plan replaces the copy; a delta changes the tensors it carries. */
  readonly full: boolean;
  readonly tensors: Map<string, Uint8Array>;
}

export class LiveCopy {
  private version: string | null = null;
  private tensors = new Map<string, Uint8Array>();
  private pending: Pending | null = null;
  /** What the last commit replaced: the version before and its tensors (null: none there). */
  private undo: {
    version: string | null;
    tensors: Map<string, Uint8Array | null>;
    /** The last commit was a full plan: rolling back puts the whole map back. */
    whole: boolean;
  } | null = null;

  /** Copies the tensors of `plan` this rank consumed out of staging (called once they verified). */
  stage(plan: Plan, staging: StagingAgent, rank: number): void {
    const tensors = new Map<string, Uint8Array>();
    for (const b of plan.buckets) {
      if (!b.consumer_ranks.includes(rank)) continue;
      const staged = staging.get(plan.version, b.bucket_id);
      if (!staged) continue;
      for (const it of b.items) {
        if (it.kind !== 'tensor') continue;
        if (it.patch)
          throw new AdapterError(
            `item ${it.key} of ${plan.version} reached the vLLM adapter as a patch, not rebuilt`,
          );
        const whole = it.part?.tensor_nbytes ?? it.nbytes;
        let t = tensors.get(it.key);
        if (!t) {
          t = new Uint8Array(whole);
          tensors.set(it.key, t);
        }
        t.set(staged.bytes.subarray(it.offset, it.offset + it.nbytes), it.part?.tensor_offset ?? 0);
      }
    }
    this.pending = { version: plan.version, full: plan.prev_version === null, tensors };
  }

  /** The prepared version is live: its tensors replace those of the version before. */
  commit(version: string): void {
    const p = this.pending;
    this.pending = null;
    if (p?.version !== version) return;
    if (p.full) {
      this.undo = { version: this.version, tensors: this.tensors, whole: true };
      this.tensors = p.tensors;
    } else {
      const replaced = new Map<string, Uint8Array | null>();
      for (const [key, bytes] of p.tensors) {
        replaced.set(key, this.tensors.get(key) ?? null);
        this.tensors.set(key, bytes);
      }
      this.undo = { version: this.version, tensors: replaced, whole: false };
    }
    this.version = version;
  }

  abort(version: string): void {
    if (this.pending?.version === version) this.pending = null;
  }

  /** The workers went back one version: so does the copy (emptied when it kept nothing back). */
  rolledBack(to: string): void {
    const u = this.undo;
    this.undo = null;
    if (!u || u.version !== to) {
      this.version = null;
      this.tensors = new Map();
      return;
    }
    if (u.whole) this.tensors = new Map();
    for (const [key, bytes] of u.tensors) {
      if (bytes) this.tensors.set(key, bytes);
      else this.tensors.delete(key);
    }
    this.version = to;
  }

  /** The live bytes of a tensor of `version`, when this copy holds that version and tensor. */
  get(version: string | null, key: string): Uint8Array | null {
    if (version === null || this.version !== version) return null;
    return this.tensors.get(key) ?? null;
  }
}
