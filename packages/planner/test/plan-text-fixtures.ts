/**
 * Plans whose text exercises every branch of the item writers: split tensors (offsets past 2^32),
 * header and whole-file entries (dtype and shape null), scalars (shape []), two shard ranks, and
 * names JSON must escape or that are not ASCII. Shared by the native and the JS-fallback tests.
 */
import { join } from 'node:path';
import type { ManifestEntry, Plan } from '@hotweights/core';
import { buildManifest, type ColumnarManifest, loadManifest } from '@hotweights/manifest';
import { createPlan, encodePlan, planFileBytes, writeManifest } from '@hotweights/planner';
import { bucketSource, ItemWriter, plannedBucket } from '../src/planned-items.js';

export const ESCAPED_NAMES = [
  'é.weight',
  'b "quoted" name',
  'back\\slash',
  'tab\tname',
  '日本.bias',
  'smile😀',
];

interface TensorSpec {
  readonly name: string;
  readonly dtype: string | null;
  readonly shape: readonly number[] | null;
  readonly nbytes: number;
  readonly kind?: 'tensor' | 'header' | 'file';
}

function hashOf(name: string, version: string, changed: boolean): string {
  let x = 2166136261;
  for (const ch of `${name}|${changed ? version : 'same'}`)
    x = Math.imul(x ^ (ch.codePointAt(0) as number), 16777619) >>> 0;
  return `xxh3-64:${x.toString(16).padStart(8, '0')}${((x ^ 0x5bd1e995) >>> 0).toString(16).padStart(8, '0')}`;
}

/** One version of the fixture checkpoint; `changed` picks the tensors whose hash differs from v1. */
function fixtureManifest(version: string, names: readonly string[], changed: (name: string) => boolean) {
  const files: { path: string; size: number; kind: 'safetensors' | 'file' }[] = [];
  const entries: ManifestEntry[] = [];
  const addFile = (
    path: string,
    rank: number,
    tensors: readonly TensorSpec[],
    kind: 'safetensors' | 'file',
  ) => {
    let at = 0;
    for (const t of tensors) {
      entries.push({
        key: `${t.name}:${rank}`,
        tensor: t.name,
        shard_rank: rank,
        kind: t.kind ?? 'tensor',
        file: path,
        file_offset: at,
        nbytes: t.nbytes,
        dtype: t.dtype,
        shape: t.shape ? [...t.shape] : null,
        hash: hashOf(`${path}/${t.name}`, version, changed(t.name)),
      });
      at += t.nbytes;
    }
    files.push({ path, size: at, kind });
  };
  for (const rank of [0, 1]) {
    const path = `model-0000${rank + 1}-of-00002.safetensors`;
    addFile(
      path,
      rank,
      [
        { name: path, dtype: null, shape: null, nbytes: 4096, kind: 'header' },
        { name: 'model.embed.weight', dtype: 'BF16', shape: [1024, 64], nbytes: 131072 },
        { name: 'model.norm.scale', dtype: 'F32', shape: [], nbytes: 4 },
        { name: 'lm_head.weight', dtype: 'BF16', shape: [300, 1000], nbytes: 600_000 },
        ...names.map((name, i) => ({ name, dtype: 'F16', shape: [i + 1, 8], nbytes: 16 * (i + 1) })),
      ],
      'safetensors',
    );
  }
  // Offsets and sizes past 2^32 (declared only: no bytes are read to plan).
  addFile(
    'huge.safetensors',
    0,
    [
      { name: 'huge.safetensors', dtype: null, shape: null, nbytes: 8, kind: 'header' },
      { name: 'huge.a', dtype: 'U8', shape: [5_000_000_000], nbytes: 5_000_000_000 },
      { name: 'huge.b', dtype: 'U8', shape: [3, 1_000_000], nbytes: 3_000_000 },
    ],
    'safetensors',
  );
  addFile(
    'config.json',
    0,
    [{ name: 'config.json', dtype: null, shape: null, nbytes: 700, kind: 'file' }],
    'file',
  );
  return buildManifest(
    { version, model_id: 'fixture', created_at: 'now', hash_algo: 'xxh3-64', files },
    entries,
  );
}

export interface TextCase {
  readonly name: string;
  readonly plan: Plan;
}

/**
 * Plans of the fixture from in-memory, binary and JSON manifests, with ASCII names only and with
 * escaped / non-ASCII names, all changed or a few changed, in buckets small enough to split.
 */
export async function textCases(dir: string): Promise<TextCase[]> {
  const out: TextCase[] = [];
  for (const [label, names] of [
    ['ascii', ['plain.a', 'plain.b']],
    ['escaped', ESCAPED_NAMES],
  ] as const) {
    const prev = fixtureManifest('v1', names, () => false);
    const next = fixtureManifest('v2', names, (n) => n !== 'model.embed.weight');
    const forms: [string, ColumnarManifest, ColumnarManifest][] = [[`${label}/memory`, prev, next]];
    for (const format of ['binary', 'json'] as const) {
      const p = join(dir, `${label}-prev.${format}`);
      const n = join(dir, `${label}-next.${format}`);
      await writeManifest(prev, p, { format });
      await writeManifest(next, n, { format });
      forms.push([`${label}/${format}`, await loadManifest(p), await loadManifest(n)]);
    }
    for (const [name, p, n] of forms) {
      const base = { checkpointRoot: '/ckpt', nextManifestPath: null, createdAt: '2026-01-01T00:00:00Z' };
      out.push({
        name: `${name}/delta`,
        plan: createPlan({ ...base, prev: p, next: n, bucketBytes: 1 << 24, worldSize: 2 }),
      });
      out.push({
        name: `${name}/full`,
        plan: createPlan({ ...base, prev: null, next: n, bucketBytes: 1 << 23, alignment: 64 }),
      });
    }
  }
  return out;
}

/** The plan's file bytes from item objects (the generic writer: no columns involved). */
export function objectBytes(plan: Plan): Buffer {
  const copy = { ...plan, buckets: plan.buckets.map((b) => ({ ...b, items: [...b.items] })) };
  return planFileBytes(copy, encodePlan(copy));
}

/** The plan's file bytes from its columns, written item by item in JS (never the native writer). */
export function jsColumnBytes(plan: Plan): { bytes: Buffer; digest: string } {
  const writers = new Map<ItemWriter, ItemWriter>();
  const buckets = plan.buckets.map((b) => {
    const s = bucketSource(b);
    if (!s) throw new Error(`bucket ${b.bucket_id} was not made by createPlan`);
    let w = writers.get(s.writer);
    if (!w) {
      w = new ItemWriter(s.writer.manifest, s.writer.bucketBytes, false);
      writers.set(s.writer, w);
    }
    return plannedBucket(b.bucket_id, b.size, [...b.consumer_ranks], { items: s.items, writer: w });
  });
  const { digest: _, ...body } = plan;
  const encoded = encodePlan({ ...body, buckets }, { trusted: true });
  return { bytes: planFileBytes(plan, encoded), digest: encoded.digest };
}
