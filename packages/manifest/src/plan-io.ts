/** Loading, validating and digesting plans. Every load validates; errors name file and field. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import {
  HotweightsError,
  PLAN_SCHEMA,
  PLAN_VERSION,
  PLAN_VERSION_PATCHES,
  PLAN_VERSIONS,
  type Plan,
  type PlanBucket,
  type PlanItem,
  type PlanItemPart,
  type PlanItemPatch,
  SchemaError,
} from '@hotweights/core';
import { HASH_ALGORITHMS } from './hash-algorithms.js';
import { PATCH_ENCODINGS } from './patch-codec.js';
import { canonicalJson, type JsonObject, SchemaChecker } from './schema-check.js';

/** `sha256:<hex>` of the canonical JSON of the plan without its `digest` field. */
export function computePlanDigest(plan: Omit<Plan, 'digest'> | Plan): string {
  const { digest: _ignored, ...rest } = plan as Plan;
  return `sha256:${createHash('sha256').update(canonicalJson(rest)).digest('hex')}`;
}

function validatePatch(c: SchemaChecker, raw: unknown, field: string): PlanItemPatch {
  const p = c.object(raw, field);
  return {
    encoding: c.oneOf(p.encoding, `${field}.encoding`, PATCH_ENCODINGS),
    base_hash: c.hash(p.base_hash, `${field}.base_hash`),
    hash: c.hash(p.hash, `${field}.hash`),
    file_offset: c.count(p.file_offset, `${field}.file_offset`),
    tensor_nbytes: c.count(p.tensor_nbytes, `${field}.tensor_nbytes`),
  };
}

function validateItem(c: SchemaChecker, raw: unknown, field: string, patches: boolean): PlanItem {
  const o = c.object(raw, field);
  const kind = c.oneOf(o.kind, `${field}.kind`, ['tensor', 'header', 'file'] as const);
  const shapeRaw = o.shape;
  let shape: number[] | null = null;
  if (shapeRaw !== null && shapeRaw !== undefined) {
    shape = c.array(shapeRaw, `${field}.shape`).map((d, i) => c.count(d, `${field}.shape[${i}]`));
  }
  let part: PlanItemPart | undefined;
  if (o.part !== undefined) {
    const p = c.object(o.part, `${field}.part`);
    part = {
      index: c.count(p.index, `${field}.part.index`),
      count: c.count(p.count, `${field}.part.count`, { min: 1 }),
      tensor_offset: c.count(p.tensor_offset, `${field}.part.tensor_offset`),
      tensor_nbytes: c.count(p.tensor_nbytes, `${field}.part.tensor_nbytes`),
    };
    if (part.index >= part.count)
      c.fail(`${field}.part.index`, `an index below part.count (${part.count})`, part.index);
  }
  let patch: PlanItemPatch | undefined;
  if (o.patch !== undefined) {
    if (!patches)
      c.fail(
        `${field}.patch`,
        `no patch in a plan_version ${PLAN_VERSION} plan (patches need ${PLAN_VERSION_PATCHES})`,
        o.patch,
      );
    if (part) c.fail(`${field}.patch`, 'no patch on a split part', o.patch);
    patch = validatePatch(c, o.patch, `${field}.patch`);
  }
  const item: PlanItem = {
    key: c.string(o.key, `${field}.key`, { nonEmpty: true }),
    tensor: c.string(o.tensor, `${field}.tensor`, { nonEmpty: true }),
    shard_rank: c.count(o.shard_rank, `${field}.shard_rank`),
    kind,
    nbytes: c.count(o.nbytes, `${field}.nbytes`),
    hash: c.hash(o.hash, `${field}.hash`),
    uri: c.relativePath(o.uri, `${field}.uri`),
    file_offset: c.count(o.file_offset, `${field}.file_offset`),
    dtype: c.nullableString(o.dtype, `${field}.dtype`),
    shape,
    offset: c.count(o.offset, `${field}.offset`),
    ...(part ? { part } : {}),
    ...(patch ? { patch } : {}),
  };
  return item;
}

function validateBucket(c: SchemaChecker, raw: unknown, field: string, patches: boolean): PlanBucket {
  const o = c.object(raw, field);
  const consumers = c
    .array(o.consumer_ranks, `${field}.consumer_ranks`)
    .map((r, i) => c.count(r, `${field}.consumer_ranks[${i}]`));
  const items = c
    .array(o.items, `${field}.items`)
    .map((it, i) => validateItem(c, it, `${field}.items[${i}]`, patches));
  const bucket: PlanBucket = {
    bucket_id: c.count(o.bucket_id, `${field}.bucket_id`),
    size: c.count(o.size, `${field}.size`),
    consumer_ranks: consumers,
    items,
  };
  for (const [i, it] of items.entries()) {
    if (it.offset + it.nbytes > bucket.size) {
      c.fail(`${field}.items[${i}].offset`, `item to end inside the bucket (size ${bucket.size})`, it.offset);
    }
  }
  return bucket;
}

/**
 * Checks the shape of a parsed plan and returns it typed. Structural only: deeper semantic
 * checks (overlaps, consumer sets, TP groups) are the planner's verify-plan.
 */
export function validatePlan(value: unknown, file?: string): Plan {
  const c = new SchemaChecker(file);
  const o: JsonObject = c.object(value, '(root)');
  if (o.schema !== PLAN_SCHEMA) c.fail('schema', JSON.stringify(PLAN_SCHEMA), o.schema);
  if (!PLAN_VERSIONS.includes(o.plan_version as number))
    c.fail(
      'plan_version',
      `one of ${PLAN_VERSIONS.join(', ')} (the plan_versions this hotweights reads)`,
      o.plan_version,
    );
  const patched = o.plan_version === PLAN_VERSION_PATCHES;
  const source = c.object(o.source, 'source');
  const next = c.object(o.next_manifest, 'next_manifest');
  const buckets = c.array(o.buckets, 'buckets').map((b, i) => validateBucket(c, b, `buckets[${i}]`, patched));
  let patches: Plan['patches'];
  if (o.patches !== undefined && o.patches !== null) {
    if (!patched) c.fail('patches', `no patch file in a plan_version ${PLAN_VERSION} plan`, o.patches);
    const p = c.object(o.patches, 'patches');
    patches = {
      path: c.string(p.path, 'patches.path', { nonEmpty: true }),
      bytes: c.count(p.bytes, 'patches.bytes'),
    };
  }
  if (patched && !patches && buckets.some((b) => b.items.some((it) => it.patch)))
    c.fail('patches', 'the patch file of a plan with patch items ({"path", "bytes"})', o.patches);
  const plan: Plan = {
    schema: PLAN_SCHEMA,
    plan_version: patched ? PLAN_VERSION_PATCHES : PLAN_VERSION,
    version: c.string(o.version, 'version', { nonEmpty: true }),
    prev_version: c.nullableString(o.prev_version, 'prev_version'),
    model_id: c.nullableString(o.model_id, 'model_id'),
    created_at: c.string(o.created_at, 'created_at'),
    hash_algo: c.oneOf(o.hash_algo, 'hash_algo', HASH_ALGORITHMS),
    source: {
      root: c.string(source.root, 'source.root', { nonEmpty: true }),
      rank: c.count(source.rank, 'source.rank'),
    },
    next_manifest: {
      digest: c.string(next.digest, 'next_manifest.digest'),
      path: c.nullableString(next.path, 'next_manifest.path'),
    },
    bucket_bytes: c.count(o.bucket_bytes, 'bucket_bytes', { min: 1 }),
    alignment: c.count(o.alignment, 'alignment', { min: 1 }),
    total_bytes: c.count(o.total_bytes, 'total_bytes'),
    checkpoint_bytes: c.count(o.checkpoint_bytes, 'checkpoint_bytes'),
    world_size:
      o.world_size === null || o.world_size === undefined
        ? null
        : c.count(o.world_size, 'world_size', { min: 1 }),
    buckets,
    removed: c.array(o.removed, 'removed').map((k, i) => c.string(k, `removed[${i}]`)),
    ...(patches ? { patches } : {}),
    digest: c.string(o.digest, 'digest', { nonEmpty: true }),
  };
  const ids = new Set<number>();
  for (const [i, b] of buckets.entries()) {
    if (ids.has(b.bucket_id))
      c.fail(`buckets[${i}].bucket_id`, 'a bucket_id not used by another bucket', b.bucket_id);
    ids.add(b.bucket_id);
  }
  return plan;
}

function parseJson(text: string, file: string | undefined): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new SchemaError({
      file,
      field: '(root)',
      expected: 'valid JSON',
      got: (err as Error).message,
      cause: err,
    });
  }
}

/** Parses and validates plan JSON text. */
export function parsePlan(text: string, file?: string): Plan {
  return validatePlan(parseJson(text, file), file);
}

/** Reads, parses and validates a plan file; checks its digest. */
export async function loadPlan(path: string): Promise<Plan> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new HotweightsError(
      'HW_NOT_FOUND',
      `cannot read plan ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
      { cause: err },
    );
  }
  const raw = parseJson(text, path);
  const plan = validatePlan(raw, path);
  // The digest covers the document as written, not the validated copy: validation fills omitted
  // optional fields with null (which would change the digest) and drops unknown ones (whose
  // edits must still be detected).
  const digest = computePlanDigest(raw as Plan);
  if (digest !== plan.digest) {
    throw new SchemaError({
      file: path,
      field: 'digest',
      expected: `${digest} (the plan was modified after it was made)`,
      got: plan.digest,
    });
  }
  return plan;
}
