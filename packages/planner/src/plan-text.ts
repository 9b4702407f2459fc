/**
 * The plan's two texts, written as bytes in one pass each: the canonical JSON its digest is taken
 * over (sorted keys, no whitespace: equal to core's canonicalJson, a test checks) and the readable
 * file (head fields one per line, one item per line). Items are written in canonical key order in
 * both, so a reader of the file sees the same item text the digest covers.
 */
import { createHash } from 'node:crypto';
import type { Plan, PlanBucket, PlanItem } from '@hotweights/core';
import { canonicalJson } from '@hotweights/manifest';
import { itemBatch } from './item-batch.js';
import { JsonBytes } from './json-bytes.js';
import { bucketSource } from './planned-items.js';

/** Fields of an item, as written (canonical order); an item with other fields is written generically. */
const ITEM_FIELDS = new Set([
  'dtype',
  'file_offset',
  'hash',
  'key',
  'kind',
  'nbytes',
  'offset',
  'part',
  'shape',
  'shard_rank',
  'tensor',
  'uri',
]);

function hasOnlyKnownFields(it: PlanItem): boolean {
  for (const k in it) if (!ITEM_FIELDS.has(k)) return false;
  return true;
}

/** The item's canonical JSON (keys sorted, no whitespace, `part` only when present). */
function writeItem(w: JsonBytes, it: PlanItem, trusted: boolean): void {
  if (!trusted && !hasOnlyKnownFields(it)) {
    writeGeneric(w, it);
    return;
  }
  w.raw('{"dtype":');
  if (it.dtype === null || it.dtype === undefined) w.raw('null');
  else w.str(it.dtype);
  w.raw(',"file_offset":');
  w.num(it.file_offset);
  w.raw(',"hash":');
  w.str(it.hash);
  w.raw(',"key":');
  w.str(it.key);
  w.raw(',"kind":');
  w.str(it.kind);
  w.raw(',"nbytes":');
  w.num(it.nbytes);
  w.raw(',"offset":');
  w.num(it.offset);
  const p = it.part;
  if (p !== undefined) {
    w.raw(',"part":{"count":');
    w.num(p.count);
    w.raw(',"index":');
    w.num(p.index);
    w.raw(',"tensor_nbytes":');
    w.num(p.tensor_nbytes);
    w.raw(',"tensor_offset":');
    w.num(p.tensor_offset);
    w.raw('}');
  }
  w.raw(',"shape":');
  w.nums(it.shape ?? null);
  w.raw(',"shard_rank":');
  w.num(it.shard_rank);
  w.raw(',"tensor":');
  w.str(it.tensor);
  w.raw(',"uri":');
  w.str(it.uri);
  w.raw('}');
}

function writeGeneric(w: JsonBytes, value: unknown): void {
  const text = canonicalJson(value);
  w.bytes(Buffer.from(text, 'utf8'));
}

/** Roughly the bytes of the items, to size the buffer once. */
function estimate(plan: Omit<Plan, 'digest'>): number {
  let n = 4096;
  for (const b of plan.buckets) {
    n += 128;
    const source = bucketSource(b);
    if (source) n += 400 * source.items.length;
    else
      for (const it of b.items) n += 220 + it.key.length + it.tensor.length + it.hash.length + it.uri.length;
  }
  return n;
}

function bucketIsPlain(b: PlanBucket): boolean {
  let n = 0;
  for (const k in b) {
    if (k !== 'bucket_id' && k !== 'consumer_ranks' && k !== 'items' && k !== 'size') return false;
    n++;
  }
  return n === 4;
}

export interface PlanTextOptions {
  /** Items and buckets were built by createPlan (exactly the known fields): skip the field check. */
  readonly trusted?: boolean;
  /** Threads of the native whole-plan item writer (default: by the number of items, see item-batch.ts). */
  readonly itemThreads?: number;
}

export interface EncodedPlan {
  /** The file up to and including the `removed` line; the digest line and `}` follow. */
  readonly head: Buffer;
  /** `sha256:<hex>` of the canonical JSON without `digest`. */
  readonly digest: string;
}

/**
 * Writes the plan file's bytes and, in the same pass, hashes the canonical JSON: small fields are
 * hashed as canonical strings, and each item's bytes are hashed straight from the file buffer
 * (an item's text is the same in both forms), so the big part is written once and never
 * stringified.
 */
export function encodePlan(plan: Omit<Plan, 'digest'> | Plan, options: PlanTextOptions = {}): EncodedPlan {
  const trusted = options.trusted === true;
  const { buckets, removed, ...rest } = plan as Plan;
  const head = rest as Record<string, unknown>;
  delete head.digest;
  const obj = { ...head, buckets, removed } as Record<string, unknown>;
  const keys = Object.keys(obj)
    .filter((k) => obj[k] !== undefined)
    .sort();
  const before: string[] = [];
  const after: string[] = [];
  let seenBuckets = false;
  for (const k of keys) {
    if (k === 'buckets') {
      seenBuckets = true;
      continue;
    }
    (seenBuckets ? after : before).push(`${JSON.stringify(k)}:${canonicalJson(obj[k])}`);
  }
  const h = createHash('sha256');
  h.update(`{${before.join(',')}${before.length ? ',' : ''}"buckets":[`);
  // A createPlan plan is written by the whole-plan native writer when it loads (item-batch.ts):
  // its items' texts exist only once every bucket is laid out, so the digest's pieces wait.
  const batch = itemBatch(buckets.map(bucketSource), options.itemThreads);
  const deferred: (string | readonly [number, number])[] = [];
  const hash = (piece: string): void => {
    if (batch) deferred.push(piece);
    else h.update(piece);
  };
  const size = batch ? batch.layout() + 8 * batch.count + 128 * buckets.length + 4096 : estimate(plan);
  const w = new JsonBytes(size + 16 * removed.length);
  const canon = new JsonBytes(1 << 20);
  w.raw('{\n');
  for (const [k, v] of Object.entries(head)) {
    if (v === undefined) continue;
    w.raw('  ');
    w.str(k);
    w.raw(': ');
    w.bytes(Buffer.from(JSON.stringify(v), 'utf8'));
    w.raw(',\n');
  }
  w.raw('  "buckets": [');
  for (const [b, bucket] of buckets.entries()) {
    const plain = trusted || bucketIsPlain(bucket);
    // A createPlan bucket is written from its columns; its items are never built for this.
    const source = bucketSource(bucket);
    const count = source ? source.items.length : bucket.items.length;
    w.raw(b === 0 ? '\n    {' : ',\n    {');
    for (const k of Object.keys(bucket)) {
      if (k === 'items') continue;
      w.str(k);
      w.raw(': ');
      w.bytes(Buffer.from(JSON.stringify((bucket as unknown as Record<string, unknown>)[k]), 'utf8'));
      w.raw(', ');
    }
    w.raw('"items": [');
    if (plain)
      hash(
        `${b ? ',' : ''}{"bucket_id":${canonicalJson(bucket.bucket_id)},"consumer_ranks":${canonicalJson(bucket.consumer_ranks)},"items":[`,
      );
    else hash(`${b ? ',' : ''}${canonicalJson(bucket)}`);
    // The canonical items text is gathered by copying each item's bytes (a JS copy of a few
    // hundred bytes costs less than a native hash call per item) and hashed once per bucket.
    canon.length = 0;
    if (batch && source) {
      batch.place(w, source.items);
      if (plain) deferred.push([source.items.start, source.items.start + count]);
    } else if (source) source.writer.writeItems(w, canon, source.items);
    else
      for (let i = 0; i < count; i++) {
        w.raw(i === 0 ? '\n      ' : ',\n      ');
        const start = w.length;
        writeItem(w, bucket.items[i] as PlanItem, trusted);
        if (plain) {
          if (i) canon.raw(',');
          canon.from(w, start, w.length);
        }
      }
    if (plain && !batch) h.update(canon.view());
    if (plain) hash(`],"size":${canonicalJson(bucket.size)}}`);
    w.raw(count ? '\n    ]}' : ']}');
  }
  hash(`]${after.length ? ',' : ''}${after.join(',')}}`);
  w.raw(buckets.length ? '\n  ],\n' : '],\n');
  w.raw('  "removed": ');
  w.bytes(Buffer.from(JSON.stringify(removed), 'utf8'));
  w.raw(',\n');
  if (batch) {
    batch.render(w.buffer);
    for (const piece of deferred) {
      if (typeof piece === 'string') h.update(piece);
      else {
        batch.join(w.buffer, piece[0], piece[1], canon);
        h.update(canon.view());
      }
    }
  }
  return { head: w.view(), digest: `sha256:${h.digest('hex')}` };
}

/** `sha256:<hex>` of the canonical JSON without `digest`: equal to core's computePlanDigest. */
export function planDigest(plan: Omit<Plan, 'digest'> | Plan, options: PlanTextOptions = {}): string {
  return encodePlan(plan, options).digest;
}

/** The plan file's bytes in two pieces (see encodePlan): written as they are, never joined. */
export function planFileChunks(plan: Plan, encoded: EncodedPlan = encodePlan(plan)): [Buffer, Buffer] {
  return [encoded.head, Buffer.from(`  "digest": ${JSON.stringify(plan.digest)}\n}\n`, 'utf8')];
}

/** Bytes of the plan file (see encodePlan), ending with the plan's digest. */
export function planFileBytes(plan: Plan, encoded: EncodedPlan = encodePlan(plan)): Buffer {
  return Buffer.concat(planFileChunks(plan, encoded));
}

/**
 * Encodings made by createPlan, by plan object: writePlan then writes those bytes instead of
 * encoding the plan again. Plans are immutable (readonly); a changed copy is a new object and is
 * encoded afresh. Weak: the bytes go away with the plan.
 */
const encodings = new WeakMap<Plan, EncodedPlan>();

export function rememberEncoding(plan: Plan, encoded: EncodedPlan): void {
  encodings.set(plan, encoded);
}

/** The remembered encoding of this very plan object, if it still matches its digest. */
export function rememberedEncoding(plan: Plan): EncodedPlan | undefined {
  const e = encodings.get(plan);
  return e && e.digest === plan.digest ? e : undefined;
}
