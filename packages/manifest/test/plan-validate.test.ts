/**
 * Plan validation field by field: every field of a plan, broken one at a time, is refused with an
 * error naming the file and that field's path, so a user can find what to fix; and a valid plan
 * with every optional part (split items, patches, nulls) loads as written.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HotweightsError, type Plan } from '@hotweights/core';
import { computePlanDigest, loadPlan, validatePlan } from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';

const HASH = `blake3:${'ab'.repeat(32)}`;

/** A plan_version 2 plan using every optional part: a header item, a patched item, a split tensor. */
function fullPlan(): Plan {
  const body: Omit<Plan, 'digest'> = {
    schema: 'hotweights.plan',
    plan_version: 2,
    version: 'v1',
    prev_version: 'v0',
    model_id: 'org/model',
    created_at: '2026-11-23T00:00:00.000Z',
    hash_algo: 'blake3',
    source: { root: '/ckpt', rank: 0 },
    next_manifest: { digest: 'sha256:00', path: '/m/v1.manifest' },
    bucket_bytes: 1024,
    alignment: 64,
    total_bytes: 300,
    checkpoint_bytes: 500,
    world_size: 2,
    removed: ['gone:0'],
    patches: { path: '/p/v1.patches', bytes: 40 },
    buckets: [
      {
        bucket_id: 0,
        size: 200,
        consumer_ranks: [0, 1],
        items: [
          {
            key: 'model.safetensors:0',
            tensor: 'model.safetensors',
            shard_rank: 0,
            kind: 'header',
            nbytes: 64,
            hash: HASH,
            uri: 'model.safetensors',
            file_offset: 0,
            dtype: null,
            shape: null,
            offset: 0,
          },
          {
            key: 'w:0',
            tensor: 'w',
            shard_rank: 0,
            kind: 'tensor',
            nbytes: 100,
            hash: HASH,
            uri: 'model.safetensors',
            file_offset: 64,
            dtype: 'F32',
            shape: [25],
            offset: 64,
            patch: {
              encoding: 'xor-brotli',
              base_hash: HASH,
              hash: HASH,
              file_offset: 0,
              tensor_nbytes: 100,
            },
          },
        ],
      },
      {
        bucket_id: 1,
        size: 100,
        consumer_ranks: [1],
        items: [
          {
            key: 's:0',
            tensor: 's',
            shard_rank: 0,
            kind: 'tensor',
            nbytes: 100,
            hash: HASH,
            uri: 'other.safetensors',
            file_offset: 164,
            dtype: 'F32',
            shape: [50],
            offset: 0,
            part: { index: 1, count: 2, tensor_offset: 100, tensor_nbytes: 200 },
          },
        ],
      },
    ],
  };
  return { ...body, digest: computePlanDigest(body) };
}

// biome-ignore lint/suspicious/noExplicitAny: the tests break the plan's fields on purpose
type Raw = any;
const broken = (edit: (p: Raw) => void): Raw => {
  const p = structuredClone(fullPlan()) as Raw;
  edit(p);
  return p;
};
const item0 = (p: Raw) => p.buckets[0].items[1];
const split = (p: Raw) => p.buckets[1].items[0];

/** [field the error names, the edit that breaks it, what it expected]. */
const CASES: [string, (p: Raw) => void, string][] = [
  ['schema', (p) => (p.schema = 'hotweights.manifest'), '"hotweights.plan"'],
  ['version', (p) => (p.version = ''), 'a non-empty string'],
  ['prev_version', (p) => (p.prev_version = 5), 'a string'],
  ['model_id', (p) => (p.model_id = 5), 'a string'],
  ['created_at', (p) => (p.created_at = 5), 'a string'],
  ['hash_algo', (p) => (p.hash_algo = 'md5'), 'one of'],
  ['source', (p) => (p.source = 5), 'an object'],
  ['source.root', (p) => (p.source.root = ''), 'a non-empty string'],
  ['source.rank', (p) => (p.source.rank = -1), 'an integer >= 0'],
  ['next_manifest', (p) => (p.next_manifest = 5), 'an object'],
  ['next_manifest.digest', (p) => (p.next_manifest.digest = 5), 'a string'],
  ['next_manifest.path', (p) => (p.next_manifest.path = 5), 'a string'],
  ['bucket_bytes', (p) => (p.bucket_bytes = 0), 'an integer >= 1'],
  ['alignment', (p) => (p.alignment = 0), 'an integer >= 1'],
  ['total_bytes', (p) => (p.total_bytes = -1), 'an integer >= 0'],
  ['checkpoint_bytes', (p) => (p.checkpoint_bytes = -1), 'an integer >= 0'],
  ['world_size', (p) => (p.world_size = 0), 'an integer >= 1'],
  ['removed', (p) => (p.removed = 'gone:0'), 'an array'],
  ['removed[0]', (p) => (p.removed = [5]), 'a string'],
  ['digest', (p) => (p.digest = ''), 'a non-empty string'],
  ['buckets', (p) => (p.buckets = 5), 'an array'],
  ['patches', (p) => (p.patches = 5), 'an object'],
  ['patches.path', (p) => (p.patches.path = ''), 'a non-empty string'],
  ['patches.bytes', (p) => (p.patches.bytes = -1), 'an integer >= 0'],
  [
    'patches',
    (p) => {
      p.plan_version = 1;
      delete item0(p).patch;
    },
    'no patch file in a plan_version 1 plan',
  ],
  ['buckets[0]', (p) => (p.buckets[0] = 5), 'an object'],
  ['buckets[0].consumer_ranks', (p) => (p.buckets[0].consumer_ranks = 0), 'an array'],
  ['buckets[0].consumer_ranks[1]', (p) => (p.buckets[0].consumer_ranks[1] = -1), 'an integer >= 0'],
  ['buckets[0].items', (p) => (p.buckets[0].items = 5), 'an array'],
  ['buckets[0].bucket_id', (p) => (p.buckets[0].bucket_id = -1), 'an integer >= 0'],
  ['buckets[0].size', (p) => (p.buckets[0].size = -1), 'an integer >= 0'],
  ['buckets[0].items[1]', (p) => (p.buckets[0].items[1] = 5), 'an object'],
  ['buckets[0].items[1].kind', (p) => (item0(p).kind = 'weights'), 'one of'],
  ['buckets[0].items[1].shape', (p) => (item0(p).shape = 25), 'an array'],
  ['buckets[0].items[1].shape[0]', (p) => (item0(p).shape = [-25]), 'an integer >= 0'],
  ['buckets[0].items[1].key', (p) => (item0(p).key = ''), 'a non-empty string'],
  ['buckets[0].items[1].tensor', (p) => (item0(p).tensor = ''), 'a non-empty string'],
  ['buckets[0].items[1].shard_rank', (p) => (item0(p).shard_rank = -1), 'an integer >= 0'],
  ['buckets[0].items[1].nbytes', (p) => (item0(p).nbytes = -1), 'an integer >= 0'],
  ['buckets[0].items[1].hash', (p) => (item0(p).hash = 'nohash'), ''],
  ['buckets[0].items[1].uri', (p) => (item0(p).uri = '../x'), ''],
  ['buckets[0].items[1].file_offset', (p) => (item0(p).file_offset = -1), 'an integer >= 0'],
  ['buckets[0].items[1].dtype', (p) => (item0(p).dtype = 5), 'a string'],
  ['buckets[0].items[1].offset', (p) => (item0(p).offset = -1), 'an integer >= 0'],
  ['buckets[0].items[1].patch', (p) => (item0(p).patch = 5), 'an object'],
  ['buckets[0].items[1].patch.encoding', (p) => (item0(p).patch.encoding = 'zip'), 'one of'],
  ['buckets[0].items[1].patch.base_hash', (p) => (item0(p).patch.base_hash = 'nohash'), ''],
  ['buckets[0].items[1].patch.hash', (p) => (item0(p).patch.hash = 'nohash'), ''],
  ['buckets[0].items[1].patch.file_offset', (p) => (item0(p).patch.file_offset = -1), 'an integer >= 0'],
  ['buckets[0].items[1].patch.tensor_nbytes', (p) => (item0(p).patch.tensor_nbytes = -1), 'an integer >= 0'],
  ['buckets[1].items[0].part', (p) => (split(p).part = 5), 'an object'],
  ['buckets[1].items[0].part.index', (p) => (split(p).part.index = -1), 'an integer >= 0'],
  ['buckets[1].items[0].part.count', (p) => (split(p).part.count = 0), 'an integer >= 1'],
  ['buckets[1].items[0].part.tensor_offset', (p) => (split(p).part.tensor_offset = -1), 'an integer >= 0'],
  ['buckets[1].items[0].part.tensor_nbytes', (p) => (split(p).part.tensor_nbytes = -1), 'an integer >= 0'],
  ['buckets[1].items[0].part.index', (p) => (split(p).part.index = 2), 'an index below part.count (2)'],
  [
    'buckets[1].items[0].patch',
    (p) => (split(p).patch = structuredClone(item0(p).patch)),
    'no patch on a split part',
  ],
  ['patches', (p) => delete p.patches, 'the patch file of a plan with patch items ({"path", "bytes"})'],
];

describe('plan validation, field by field', () => {
  const dir = mkdtempSync(join(tmpdir(), 'hw-plan-validate-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a valid plan with every optional part validates as written', () => {
    const plan = fullPlan();
    expect(validatePlan(structuredClone(plan), 'p.json')).toEqual(plan);
    // Optional fields may be null or absent: a plan_version 1 plan without patches or world size.
    const plain = broken((p) => {
      p.plan_version = 1;
      p.patches = null;
      p.world_size = null;
      delete p.buckets[0].items[1].patch;
      delete p.buckets[0].items[0].shape;
    });
    const v1 = validatePlan(plain, 'p.json');
    expect(v1.plan_version).toBe(1);
    expect(v1.world_size).toBeNull();
    expect(v1).not.toHaveProperty('patches');
    expect(v1.buckets[0]?.items[0]?.shape).toBeNull();
    expect(v1.buckets[1]?.items[0]?.part).toEqual({
      index: 1,
      count: 2,
      tensor_offset: 100,
      tensor_nbytes: 200,
    });
  });

  it.each(CASES)('refuses a broken %s, naming it', (field, edit, expected) => {
    let err: unknown;
    try {
      validatePlan(broken(edit), 'p.json');
    } catch (e) {
      err = e;
    }
    expect(err, field).toMatchObject({ name: 'SchemaError' });
    expect(
      (err as Error).message.startsWith(`p.json: ${field}: expected ${expected}`),
      (err as Error).message,
    ).toBe(true);
  });

  it('refuses a plan that is not an object, naming the root', () => {
    expect(() => validatePlan(5, 'p.json')).toThrowError(/^p\.json: \(root\): expected an object/);
  });

  it('refuses a missing plan file by name and code', async () => {
    const path = join(dir, 'absent.json');
    const err = await loadPlan(path).then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(HotweightsError);
    expect(err).toMatchObject({ code: 'HW_NOT_FOUND', message: `cannot read plan ${path}: ENOENT` });
    expect((err as Error & { cause?: { code?: string } }).cause?.code).toBe('ENOENT');
  });

  it('loads a written plan with every optional part and checks its digest', async () => {
    const plan = fullPlan();
    writeFileSync(join(dir, 'full.json'), JSON.stringify(plan));
    expect(await loadPlan(join(dir, 'full.json'))).toEqual(plan);
  });
});
