/**
 * Random corruption of manifest files, binary and JSON, loaded with the digest check on: every
 * damaged file either loads as exactly the original manifest (the damage hit bytes the format
 * ignores, or metadata the digest does not cover) or is refused with a named hotweights error. Never a crash (TypeError, RangeError …)
 * and never a different manifest.
 *
 * Bounded by iterations and time; the seed is random per run and printed with any failure
 * (set MANIFEST_FUZZ_SEED=<seed> to replay it).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HotweightsError, type Manifest, type ManifestEntry } from '@hotweights/core';
import {
  buildManifest,
  loadManifest,
  serializeManifest,
  serializeManifestBinary,
} from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-fuzz-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ITERATIONS = 1500;
const BUDGET_MS = 8000;

/** mulberry32: a small seeded generator, so a failing run can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 2 ** 32;
  };
}

/** Two safetensors files of a few tensors each, and a plain file: every entry kind and column. */
function fixture(): Manifest {
  const hex = (i: number) => `sha256:${i.toString(16).padStart(2, '0').repeat(32)}`;
  const entries: ManifestEntry[] = [];
  const files = [];
  for (const [f, file] of ['model-a.safetensors', 'model-b.safetensors'].entries()) {
    let offset = 0;
    const push = (e: Omit<ManifestEntry, 'file' | 'file_offset' | 'shard_rank' | 'hash'>) => {
      entries.push({ ...e, file, file_offset: offset, shard_rank: 0, hash: hex(entries.length) });
      offset += e.nbytes;
    };
    push({ key: `${file}:0`, tensor: file, kind: 'header', nbytes: 128, dtype: null, shape: null });
    for (let t = 0; t < 4; t++) {
      const name = `layers.${f}.${t}.weight`;
      push({ key: `${name}:0`, tensor: name, kind: 'tensor', nbytes: 96, dtype: 'BF16', shape: [6, 8] });
    }
    files.push({ path: file, size: offset, kind: 'safetensors' as const });
  }
  entries.push({
    key: 'config.json:0',
    tensor: 'config.json',
    shard_rank: 0,
    kind: 'file',
    file: 'config.json',
    file_offset: 0,
    nbytes: 17,
    dtype: null,
    shape: null,
    hash: hex(99),
  });
  files.push({ path: 'config.json', size: 17, kind: 'file' as const });
  return buildManifest(
    {
      version: 'v7',
      model_id: 'fuzz/model',
      created_at: '2026-01-01T00:00:00.000Z',
      checkpoint_root: '/ckpt',
      hash_algo: 'sha256',
      files,
    },
    entries,
  );
}

/**
 * Everything the manifest's digest vouches for, as one comparable value. created_at and
 * checkpoint_root are left out: the digest does not cover them by design (manifest-digest.ts:
 * republishing the same bytes gives the same digest, and the root is where the publisher read
 * the checkpoint), so a damaged byte there can load as another, informational, value.
 */
function observed(m: Manifest) {
  const entries = [];
  for (let i = 0; i < m.size; i++) entries.push(m.entry(i));
  const { version, model_id, digest, hash_algo, files, total_bytes } = m;
  return { version, model_id, digest, hash_algo, files, total_bytes, entries };
}

function damage(bytes: Buffer, next: () => number): { bytes: Buffer; what: string } {
  const at = (n: number) => Math.floor(next() * n);
  if (next() < 0.3) {
    const len = at(bytes.length);
    return { bytes: bytes.subarray(0, len), what: `truncated to ${len} of ${bytes.length} bytes` };
  }
  const out = Buffer.from(bytes);
  const flips: string[] = [];
  for (let n = 1 + at(3); n > 0; n--) {
    const i = at(out.length);
    const mask = 1 + at(255);
    out[i] = (out[i] as number) ^ mask;
    flips.push(`byte ${i} ^ 0x${mask.toString(16)}`);
  }
  return { bytes: out, what: flips.join(', ') };
}

describe('manifest fuzzing: flipped bytes and truncation', () => {
  it('loads the same manifest or refuses it with a named error, never crashes or misleads', async () => {
    const seed = Number(process.env.MANIFEST_FUZZ_SEED) || Math.floor(Math.random() * 2 ** 31);
    const next = rng(seed);
    const m = fixture();
    const want = observed(m);
    const forms = {
      binary: serializeManifestBinary(m),
      json: Buffer.from(serializeManifest(m), 'utf8'),
    };
    // Both untouched forms load as the manifest itself.
    for (const [form, bytes] of Object.entries(forms)) {
      writeFileSync(join(dir, form), bytes);
      expect(observed(await loadManifest(join(dir, form))), form).toEqual(want);
    }
    const started = Date.now();
    const outcomes = { refused: 0, identical: 0 };
    const codes = new Set<string>();
    let i = 0;
    for (; i < ITERATIONS && Date.now() - started < BUDGET_MS; i++) {
      const form = next() < 0.5 ? 'binary' : 'json';
      const { bytes, what } = damage(forms[form], next);
      const path = join(dir, `case-${form}`);
      writeFileSync(path, bytes);
      const context = `seed ${seed} (replay: MANIFEST_FUZZ_SEED=${seed}), case ${i}, ${form} manifest ${what}`;
      let loaded: Manifest;
      try {
        loaded = await loadManifest(path);
      } catch (err) {
        if (!(err instanceof HotweightsError)) {
          throw new Error(`${context}: crashed instead of refusing: ${(err as Error).stack}`);
        }
        expect(err.message.length, context).toBeGreaterThan(0);
        codes.add(err.code);
        outcomes.refused++;
        continue;
      }
      expect(observed(loaded), `${context}: loaded a different manifest`).toEqual(want);
      outcomes.identical++;
    }
    console.log(`manifest fuzz: seed ${seed}, ${i} cases, ${JSON.stringify(outcomes)}, codes ${[...codes]}`);
    expect(i).toBeGreaterThan(50);
    expect(outcomes.refused).toBeGreaterThan(0);
  });
});
