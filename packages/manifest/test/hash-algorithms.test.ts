import { type ManifestEntry, SchemaError, VerificationError } from '@hotweights/core';
import {
  buildManifest,
  computePlanDigest,
  HASH_ALGORITHMS,
  HASH_HEX_LENGTH,
  hashAlgorithmInfo,
  hashItem,
  parseItemHash,
  parseManifest,
  parseManifestBinary,
  serializeManifest,
  serializeManifestBinary,
  validatePlan,
} from '@hotweights/manifest';
import { describe, expect, it } from 'vitest';

const KNOWN = /expected one of blake3, xxh3-64, sha256/;
const bytes = Buffer.from('the one table of hash algorithms');

/** A one-file manifest hashed with `algo`, its digest computed. */
function manifestOf(algo: string, hex: string) {
  const entry: ManifestEntry = {
    key: 'extra.bin:0',
    tensor: 'extra.bin',
    shard_rank: 0,
    kind: 'file',
    file: 'extra.bin',
    file_offset: 0,
    nbytes: bytes.length,
    dtype: null,
    shape: null,
    hash: `${algo}:${hex}`,
  };
  return buildManifest(
    {
      version: 'v1',
      model_id: 'm',
      created_at: 'now',
      hash_algo: algo,
      files: [{ path: 'extra.bin', size: bytes.length, kind: 'file' }],
    },
    [entry],
  );
}

/** A one-item plan document naming `algo`. */
function planOf(algo: string): Record<string, unknown> {
  const body = {
    schema: 'hotweights.plan',
    plan_version: 1,
    version: 'v1',
    created_at: 'now',
    hash_algo: algo,
    source: { root: '/ckpt', rank: 0 },
    next_manifest: { digest: 'sha256:00' },
    bucket_bytes: 64,
    alignment: 64,
    total_bytes: 0,
    checkpoint_bytes: 0,
    removed: [],
    buckets: [],
  };
  return { ...body, digest: computePlanDigest(body as never) };
}

describe('the hash-algorithm table', () => {
  it('is what hashing, manifests (both forms), plans and verification accept, row by row', () => {
    expect(Object.keys(HASH_HEX_LENGTH)).toEqual([...HASH_ALGORITHMS]);
    for (const algo of HASH_ALGORITHMS) {
      const info = hashAlgorithmInfo(algo);
      expect(info?.name).toBe(algo);
      const hash = hashItem(algo, [bytes.subarray(0, 5), bytes.subarray(5)]);
      const hex = hash.slice(algo.length + 1);
      expect(hex).toHaveLength(info?.hexLength as number);
      expect(hash).toBe(hashItem(algo, [bytes]));
      const m = manifestOf(algo, hex);
      expect(parseManifest(serializeManifest(m), 'm.json', { verifyDigest: true }).hashOf(0)).toBe(hash);
      expect(parseManifestBinary(serializeManifestBinary(m), 'm.manifest').hashOf(0)).toBe(hash);
      expect(parseItemHash(hash, 'extra.bin:0')).toEqual({ algo, hex });
      expect(validatePlan(planOf(algo), 'p.json').hash_algo).toBe(algo);
    }
  });

  it('refuses an algorithm outside it, naming it and listing the known ones, everywhere', () => {
    for (const algo of ['md5', 'xxh3-128']) {
      expect(hashAlgorithmInfo(algo)).toBeUndefined();
      const json = JSON.parse(serializeManifest(manifestOf('sha256', '0'.repeat(64))));
      expect(() => parseManifest(JSON.stringify({ ...json, hash_algo: algo }), 'm.json')).toThrow(
        new RegExp(`m\\.json: hash_algo: ${KNOWN.source} \\(got "${algo}"\\)`),
      );
      expect(() => parseManifest(JSON.stringify({ ...json, hash_algo: algo }))).toThrow(SchemaError);
      expect(() => parseItemHash(`${algo}:00`, 'w:0')).toThrow(VerificationError);
      expect(() => parseItemHash(`${algo}:00`, 'w:0')).toThrow(
        new RegExp(`item w:0: .*unknown hash algorithm "${algo}": ${KNOWN.source}`),
      );
      expect(() => validatePlan(planOf(algo), 'p.json')).toThrow(
        new RegExp(`p\\.json: hash_algo: ${KNOWN.source} \\(got "${algo}"\\)`),
      );
    }
  });
});
