import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  buildManifest,
  loadManifest,
  loadPlan,
  recordCommittedManifest,
  serializeManifest,
  serializeManifestBinary,
} from '@hotweights/manifest';
import { writeSafetensors } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { autoBucketBytes } from '../src/commands/plan.js';
import { runCli } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-cli-plan-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const state = join(dir, 'state');
const env = { HOTWEIGHTS_STATE_DIR: state };
const mPrev = join(dir, 'prev.json');
const mNext = join(dir, 'next.json');

/** v1 and v2 differ in one tensor (changed), v2 adds one and drops one. */
beforeAll(async () => {
  for (const [name, version] of [
    ['a', 'v1'],
    ['b', 'v2'],
  ] as const) {
    const root = join(dir, name);
    mkdirSync(root);
    const tensors: Record<string, { dtype: string; shape: number[]; data: Uint8Array }> = {
      same: { dtype: 'F32', shape: [256], data: new Uint8Array(1024).fill(1) },
      changed: { dtype: 'BF16', shape: [4096], data: new Uint8Array(8192).fill(name === 'a' ? 2 : 3) },
    };
    if (name === 'a') tensors.dropped = { dtype: 'I64', shape: [2], data: new Uint8Array(16) };
    else tensors.added = { dtype: 'F16', shape: [8], data: new Uint8Array(16).fill(5) };
    await writeSafetensors(join(root, 'model.safetensors'), tensors);
    const r = await runCli(
      [
        'publish',
        '--checkpoint',
        root,
        '--version',
        version,
        '--model-id',
        'org/m',
        '--output',
        name === 'a' ? mPrev : mNext,
      ],
      { env },
    );
    expect(r.code).toBe(0);
  }
}, 120_000);

describe('hotweights plan', { timeout: 180_000 }, () => {
  it('plans changed and added tensors, reports removed ones, and verifies by default', async () => {
    const out = join(dir, 'plan.json');
    const r = await runCli(
      ['plan', '--prev', mPrev, '--next', mNext, '--output', out, '--bucket-mb', '1', '--world-size', '2'],
      { env },
    );
    expect(r.code).toBe(0);
    // the header changed too (the tensor list changed)
    expect(r.stdout).toMatch(
      /^plan v1 -> v2: 2 changed, 1 added, 1 removed; .* in 1 bucket\(s\) -> .*plan\.json\n$/,
    );
    expect(r.stderr).toMatch(/previous: .*prev\.json/);
    expect(r.stderr).toMatch(/bucket size 1\.0 MiB/);
    const plan = await loadPlan(out);
    expect(plan.buckets.flatMap((b) => b.items.map((i) => i.tensor)).sort()).toEqual([
      'added',
      'changed',
      'model.safetensors',
    ]);
    expect(plan.removed).toEqual(['dropped:0']);
    expect(plan.buckets[0]?.consumer_ranks).toEqual([0, 1]);
    expect(plan.source.root).toBe(join(dir, 'b'));
    expect(plan.next_manifest.path).toBe(mNext);
  });

  it('uses the last committed manifest without --prev, and plans everything when none is recorded', async () => {
    const none = await runCli(['plan', '--next', mNext, '--output', join(dir, 'full.json'), '--json'], {
      env,
    });
    expect(none.code).toBe(0);
    const s1 = JSON.parse(none.stdout);
    expect(s1).toMatchObject({ prev_version: null, changed: 0, added: 4, removed: 0 });
    expect(s1.prev_source).toMatch(/no committed version recorded/);
    await recordCommittedManifest(state, mPrev);
    const rec = await runCli(['plan', '--next', mNext, '--output', join(dir, 'rec.json'), '--json'], { env });
    expect(rec.code).toBe(0);
    expect(JSON.parse(rec.stdout)).toMatchObject({ prev_version: 'v1', changed: 2, added: 1, removed: 1 });
  });

  it('splits tensors larger than a bucket and sizes buckets with --auto --alpha', async () => {
    const out = join(dir, 'split.json');
    const r = await runCli(
      ['plan', '--prev', mPrev, '--next', mNext, '--output', out, '--bucket-mb', '0.00390625'],
      { env },
    );
    expect(r.code).toBe(0);
    const plan = await loadPlan(out);
    expect(plan.bucket_bytes).toBe(4096);
    const parts = plan.buckets.flatMap((b) => b.items).filter((i) => i.tensor === 'changed');
    expect(parts.map((p) => p.part?.index).sort()).toEqual([0, 1]);
    const auto = await runCli(
      [
        'plan',
        '--prev',
        mPrev,
        '--next',
        mNext,
        '--output',
        join(dir, 'auto.json'),
        '--auto',
        '--alpha',
        '0.01',
      ],
      { env },
    );
    expect(auto.code).toBe(0);
    expect(auto.stderr).toMatch(/auto bucket size .* MiB: alpha 0\.01 × free host memory/);
    expect(autoBucketBytes(0.5, 1024)).toEqual({ bytes: 16 * 1024 * 1024, clamped: true });
    expect(autoBucketBytes(0.5, 64 * 2 ** 30)).toEqual({ bytes: 2 * 2 ** 30, clamped: true });
    expect(autoBucketBytes(0.25, 2 ** 30)).toEqual({ bytes: 256 * 2 ** 20, clamped: false });
    const bad = await runCli(
      ['plan', '--next', mNext, '--output', join(dir, 'x.json'), '--auto', '--alpha', '2'],
      { env },
    );
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/--alpha 2: expected a fraction 0 < A <= 1/);
  });

  it('takes consumers from a group map and TP groups; --strict makes verification problems fatal, writing nothing', async () => {
    const gm = join(dir, 'groups.json');
    writeFileSync(gm, JSON.stringify({ 'chang*': [1], added: [0] }));
    const out = join(dir, 'gm.json');
    const r = await runCli(
      ['plan', '--prev', mPrev, '--next', mNext, '--output', out, '--group-map', gm, '--world-size', '2'],
      { env },
    );
    expect(r.code).toBe(0);
    const plan = await loadPlan(out);
    const byTensor = Object.fromEntries(
      plan.buckets.flatMap((b) => b.items.map((i) => [i.tensor, b.consumer_ranks])),
    );
    expect(byTensor).toEqual({ changed: [1], added: [0], 'model.safetensors': [0, 1] });
    // a rank outside the world: a warning by default, fatal with --strict
    writeFileSync(gm, JSON.stringify({ 'chang*': [7] }));
    const warn = await runCli(
      ['plan', '--prev', mPrev, '--next', mNext, '--output', join(dir, 'w.json'), '--group-map', gm],
      { env },
    );
    expect(warn.code).toBe(0);
    expect(warn.stderr).toMatch(
      /problem \[rank-out-of-range\]: bucket \d+: consumer rank 7 is outside 0\.\.0/,
    );
    const strictOut = join(dir, 'strict.json');
    const strict = await runCli(
      ['plan', '--prev', mPrev, '--next', mNext, '--output', strictOut, '--group-map', gm, '--strict'],
      { env },
    );
    expect(strict.code).toBe(1);
    expect(strict.stderr).toMatch(
      /\[HW_PLAN_INVALID\]: plan verification failed: 1 problem\(s\); first: bucket \d+: consumer rank 7/,
    );
    expect(existsSync(strictOut)).toBe(false);
    // The plan is written beside --output while it is checked: a refused plan leaves an existing
    // file as it was, and no temp file behind.
    writeFileSync(strictOut, 'the plan made before\n');
    const again = await runCli(
      ['plan', '--prev', mPrev, '--next', mNext, '--output', strictOut, '--group-map', gm, '--strict'],
      { env },
    );
    expect(again.code).toBe(1);
    expect(readFileSync(strictOut, 'utf8')).toBe('the plan made before\n');
    expect(readdirSync(dir).filter((f) => f.includes('strict.json'))).toEqual(['strict.json']);
    // TP groups from the environment: shard rank 0 -> group 0
    const tp = await runCli(
      ['plan', '--prev', mPrev, '--next', mNext, '--output', join(dir, 'tp.json'), '--world-size', '4'],
      {
        env: { ...env, HOTWEIGHTS_TP_GROUPS: '{"0": [0, 2], "1": [1, 3]}' },
      },
    );
    expect(tp.code).toBe(0);
    expect((await loadPlan(join(dir, 'tp.json'))).buckets.map((b) => b.consumer_ranks)).toEqual([[0, 2]]);
    // TP groups that miss shard rank 0: its bucket has no consumers, fatal with --strict
    const miss = await runCli(
      [
        'plan',
        '--prev',
        mPrev,
        '--next',
        mNext,
        '--output',
        join(dir, 'miss.json'),
        '--world-size',
        '2',
        '--tp-groups',
        '{"1": [1]}',
        '--strict',
      ],
      { env },
    );
    expect(miss.code).toBe(1);
    expect(miss.stderr).toMatch(/\[HW_PLAN_INVALID\]: .*first: bucket 0 has no consumer ranks/);
    expect(existsSync(join(dir, 'miss.json'))).toBe(false);
  });

  it('rejects bad manifests with one clear error and no output', async () => {
    const notJson = join(dir, 'not.json');
    writeFileSync(notJson, 'hello');
    const out = join(dir, 'bad-out.json');
    const r1 = await runCli(['plan', '--next', notJson, '--output', out], { env });
    expect(r1.code).toBe(1);
    expect(r1.stderr).toMatch(/^hotweights: error \[HW_SCHEMA\]: .*not\.json: \(root\): expected valid JSON/);
    const invalid = join(dir, 'invalid.json');
    writeFileSync(
      invalid,
      JSON.stringify({ schema: 'hotweights.manifest', manifest_version: 2, version: 'v', files: 'x' }),
    );
    const r2 = await runCli(['plan', '--next', invalid, '--output', out], { env });
    expect(r2.code).toBe(1);
    expect(r2.stderr).toMatch(/invalid\.json: files: expected an array/);
    const r3 = await runCli(['plan', '--next', join(dir, 'missing.json'), '--output', out], { env });
    expect(r3.code).toBe(1);
    expect(r3.stderr).toMatch(/cannot read manifest .*missing\.json: ENOENT/);
    for (const r of [r1, r2, r3]) expect(r.stderr).not.toMatch(/\n\s+at /);
    expect(existsSync(out)).toBe(false);
  });

  it('refuses to diff a manifest without a model id against the record of another unnamed model', async () => {
    /** A model without an id: whole files named `names`. */
    const unnamed = (version: string, names: string[]) =>
      buildManifest(
        {
          version,
          model_id: null,
          created_at: 'now',
          checkpoint_root: join(dir, version),
          hash_algo: 'sha256',
          files: names.map((path) => ({ path, size: 4, kind: 'file' as const })),
        },
        names.map((n) => ({
          key: `${n}:0`,
          tensor: n,
          shard_rank: 0,
          kind: 'file' as const,
          file: n,
          file_offset: 0,
          nbytes: 4,
          dtype: null,
          shape: null,
          hash: `sha256:${'1'.repeat(64)}`,
        })),
      );
    const ownState = join(dir, 'state-unnamed');
    const recorded = await recordCommittedManifest(
      ownState,
      unnamed('llama-v1', ['config.json', 'llama.bin']),
    );
    const next = join(dir, 'mistral.json');
    writeFileSync(next, serializeManifest(unnamed('mistral-v1', ['params.json', 'mistral.pth'])));
    const out = join(dir, 'unrelated.json');
    const r = await runCli(['plan', '--next', next, '--output', out], {
      env: { HOTWEIGHTS_STATE_DIR: ownState },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(
      `[HW_STATE]: committed record ${recorded} (llama-v1) is of another model than the next manifest (mistral-v1, no model id)`,
    );
    expect(existsSync(out)).toBe(false);
  });

  it('refuses a manifest edited after publish, naming it, and writes no plan', async () => {
    const bin = serializeManifestBinary(await loadManifest(mNext));
    const header = JSON.parse(bin.subarray(16, 16 + bin.readUInt32LE(8)).toString('utf8'));
    bin[(header.columns.hash as [number, number])[0]] ^= 0x01;
    const edited = join(dir, 'edited.manifest');
    writeFileSync(edited, bin);
    const out = join(dir, 'edited-plan.json');
    const r = await runCli(['plan', '--prev', mPrev, '--next', edited, '--output', out], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /\[HW_SCHEMA\]: .*edited\.manifest: digest: .*the stored digest, which does not match the content/,
    );
    expect(existsSync(out)).toBe(false);
  });
});
