import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManifestEntry } from '@hotweights/core';
import {
  buildManifest,
  committedManifestPath,
  readCommittedManifest,
  recordCommittedManifest,
  serializeManifest,
} from '@hotweights/manifest';
import { afterAll, describe, expect, it } from 'vitest';

const dir = mkdtempSync(join(tmpdir(), 'hw-manifest-record-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A manifest of whole files named `names` (one entry each), hashes seeded by `seed`. */
function model(modelId: string | null, version: string, names: readonly string[], seed = 'a') {
  const entries: ManifestEntry[] = names.map((n) => ({
    key: `${n}:0`,
    tensor: n,
    shard_rank: 0,
    kind: 'file',
    file: n,
    file_offset: 0,
    nbytes: 4,
    dtype: null,
    shape: null,
    hash: `sha256:${seed.repeat(64)}`,
  }));
  return buildManifest(
    {
      version,
      model_id: modelId,
      created_at: 'now',
      hash_algo: 'sha256',
      files: names.map((path) => ({ path, size: 4, kind: 'file' as const })),
    },
    entries,
  );
}

const llama = ['config.json', 'model-00001.safetensors', 'model-00002.safetensors', 'tokenizer.json'];
const other = ['params.json', 'consolidated.00.pth', 'tokenizer.model'];

describe('the committed record of models without a model id', () => {
  it('is diffed against by a new version of the same model', async () => {
    const state = join(dir, 'same');
    await recordCommittedManifest(state, model(null, 'v1', llama));
    const next = model(null, 'v2', [...llama, 'generation_config.json'], 'b');
    expect((await readCommittedManifest(state, next))?.version).toBe('v1');
  });

  it('is refused, naming it, for the next manifest of another model', async () => {
    const state = join(dir, 'other');
    const path = await recordCommittedManifest(state, model(null, 'llama-v1', llama));
    await expect(readCommittedManifest(state, model(null, 'mistral-v1', other))).rejects.toThrow(
      `committed record ${path} (llama-v1) is of another model than the next manifest (mistral-v1, no model id): only 0 of 3 sampled entries`,
    );
    await expect(readCommittedManifest(state, model(null, 'mistral-v1', other))).rejects.toThrow(
      /--prev .* or publish with --model-id ID/,
    );
    // Asked by model id alone (status, scripts), the record is still there.
    expect((await readCommittedManifest(state, null))?.version).toBe('llama-v1');
  });

  it('is refused when a record in a model directory names another model', async () => {
    const state = join(dir, 'moved');
    const path = committedManifestPath(state, 'org/a');
    mkdirSync(join(path, '..'), { recursive: true });
    // An older record (committed.json) copied into another model's directory.
    writeFileSync(join(path, '..', 'committed.json'), serializeManifest(model('org/b', 'v1', llama)));
    await expect(readCommittedManifest(state, model('org/a', 'v2', llama))).rejects.toThrow(
      `committed record ${join(path, '..', 'committed.json')} is of model "org/b", not of the next manifest's (model "org/a")`,
    );
  });

  it('reads an older JSON record of the same model', async () => {
    const state = join(dir, 'legacy');
    const path = committedManifestPath(state, null);
    mkdirSync(join(path, '..'), { recursive: true });
    writeFileSync(join(path, '..', 'committed.json'), serializeManifest(model(null, 'v1', llama)));
    expect((await readCommittedManifest(state, model(null, 'v2', llama, 'c')))?.version).toBe('v1');
  });
});
