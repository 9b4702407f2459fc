import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ManifestEntry, Plan } from '@hotweights/core';
import { buildManifest } from '@hotweights/manifest';
import { createPlan, parseTpGroups, writePlan } from '@hotweights/planner';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-cli-verify-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const env = { HOTWEIGHTS_STATE_DIR: join(dir, 'state') };

/** A TP-sharded plan: shard 0 -> ranks [0, 2], shard 1 -> ranks [1, 3]. */
function tpPlan(): Plan {
  const entries: ManifestEntry[] = [0, 1].flatMap((r): ManifestEntry[] => [
    {
      key: `rank${r}.safetensors:${r}`,
      tensor: `rank${r}.safetensors`,
      shard_rank: r,
      kind: 'header',
      file: `rank${r}.safetensors`,
      file_offset: 0,
      nbytes: 16,
      dtype: null,
      shape: null,
      hash: `blake3:${String(r + 2).repeat(64)}`,
    },
    {
      key: `w:${r}`,
      tensor: 'w',
      shard_rank: r,
      kind: 'tensor',
      file: `rank${r}.safetensors`,
      file_offset: 16,
      nbytes: 400,
      dtype: 'F32',
      shape: [100],
      hash: `blake3:${String(r).repeat(64)}`,
    },
  ]);
  const next = buildManifest(
    {
      version: 'v2',
      model_id: null,
      created_at: 'now',
      hash_algo: 'blake3',
      files: [0, 1].map((r) => ({ path: `rank${r}.safetensors`, size: 416, kind: 'safetensors' as const })),
    },
    entries,
  );
  return createPlan({
    prev: null,
    next,
    checkpointRoot: '/ckpt',
    nextManifestPath: null,
    bucketBytes: 1024,
    worldSize: 4,
    consumers: { tpGroups: parseTpGroups('{"0": [0, 2], "1": [1, 3]}') },
  });
}

const good = join(dir, 'good.json');
beforeAll(async () => {
  await writePlan(tpPlan(), good);
}, 60_000);

/** Writes an edited copy of the good plan (the digest then no longer matches unless `redigest`). */
// biome-ignore lint/suspicious/noExplicitAny: edits raw, untyped plan JSON
type RawPlan = any;

function edited(name: string, edit: (p: RawPlan) => void): string {
  const doc = JSON.parse(readFileSync(good, 'utf8'));
  edit(doc);
  const path = join(dir, name);
  writeFileSync(path, JSON.stringify(doc));
  return path;
}

describe('hotweights verify-plan', { timeout: 180_000 }, () => {
  it('passes a good plan, with TP groups enforced, in human and JSON form', async () => {
    const r = await runCli(
      [
        'verify-plan',
        '--plan',
        good,
        '--require-consumers',
        '--tp-groups',
        '{"0": [0, 2], "1": [1, 3]}',
        '--enforce-tp-superset',
      ],
      { env },
    );
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/good\.json: OK \(2 bucket\(s\), 4 item\(s\), 832 B\)/);
    const j = await runCli(['verify-plan', '--plan', good, '--world-size', '4', '--json'], { env });
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({ ok: true, problems: [], warnings: [] });
  });

  it('reports consumer problems: missing, out of range, duplicates, TP superset, outside groups', async () => {
    const p = edited('consumers.json', (d) => {
      d.buckets[0].consumer_ranks = [];
      d.buckets[1].consumer_ranks = [1, 1, 5];
    });
    const warnOnly = await runCli(['verify-plan', '--plan', p, '--json'], { env });
    const rep = JSON.parse(warnOnly.stdout);
    expect(warnOnly.code).toBe(1); // duplicates, range and the digest are problems regardless
    expect(rep.warnings.map((w: { check: string }) => w.check)).toContain('consumers-missing');
    expect(rep.problems.map((w: { check: string }) => w.check).sort()).toEqual([
      'consumers-duplicate',
      'digest',
      'rank-out-of-range',
    ]);
    const strict = await runCli(
      [
        'verify-plan',
        '--plan',
        p,
        '--require-consumers',
        '--world-size',
        '8',
        '--tp-groups',
        '{"0": [0, 2], "1": [1, 3]}',
        '--enforce-tp-superset',
        '--json',
      ],
      { env },
    );
    const checks = JSON.parse(strict.stdout)
      .problems.map((w: { check: string }) => w.check)
      .sort();
    expect(checks).toEqual([
      'consumers-duplicate',
      'consumers-missing',
      'digest',
      'tp-outside-groups',
      'tp-superset',
      'tp-superset',
    ]);
    expect(strict.code).toBe(1);
  });

  it('reports integrity problems: overlaps, alignment, sizes, totals, parts; and refuses paths escaping the root', async () => {
    const p = edited('integrity.json', (d) => {
      d.buckets[0].items[1].offset = 8; // the header item: now unaligned and overlapping w:0
      d.total_bytes = 1;
    });
    const r = await runCli(['verify-plan', '--plan', p], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(
      /problem \[alignment\]: bucket 0: item rank0\.safetensors:0 at offset 8 is not aligned to 256/,
    );
    expect(r.stdout).toMatch(
      /problem \[overlap\]: bucket 0: item rank0\.safetensors:0 at offset 8 overlaps the previous item/,
    );
    expect(r.stdout).toMatch(/problem \[total-bytes\]: total_bytes 1 is not the sum of item sizes \(832\)/);
    expect(r.stdout).toMatch(/problem \[digest\]/);
    expect(r.stdout).toMatch(/integrity\.json: \d+ problem\(s\)\n$/);
    const escaping = edited('escape.json', (d) => {
      d.buckets[0].items[0].uri = '../../etc/passwd';
    });
    const e = await runCli(['verify-plan', '--plan', escaping], { env });
    expect(e.code).toBe(1);
    expect(e.stderr).toMatch(
      /escape\.json: buckets\[0\]\.items\[0\]\.uri: expected a relative path inside the checkpoint root/,
    );
    const dup = edited('dup.json', (d) => {
      d.buckets[1].items.push({ ...d.buckets[0].items[1], offset: 512 });
      d.buckets[1].size = 912;
    });
    const dr = await runCli(['verify-plan', '--plan', dup], { env });
    expect(dr.stdout).toMatch(/problem \[duplicate-key\]: item rank0\.safetensors:0 is planned twice/);
    const notJson = join(dir, 'nj.json');
    writeFileSync(notJson, '{"schema": "hotweights.plan", ');
    const nj = await runCli(['verify-plan', '--plan', notJson], { env });
    expect(nj.code).toBe(1);
    expect(nj.stderr).toMatch(/^hotweights: error \[HW_SCHEMA\]: .*nj\.json: \(root\): expected valid JSON/);
    const schema = edited('schema.json', (d) => {
      d.plan_version = 99;
    });
    const sc = await runCli(['verify-plan', '--plan', schema], { env });
    expect(sc.stderr).toMatch(/schema\.json: plan_version: expected one of 1, 2 /);
  });
});

describe('hotweights verify-tp', { timeout: 180_000 }, () => {
  it('accepts groups covering every rank once (group 0 included) and reports each kind of problem', async () => {
    const ok = await runCli(['verify-tp', '--tp-groups', '{"0": [0, 2], "1": [1, 3]}', '--world-size', '4'], {
      env,
    });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/TP groups: OK \(2 group\(s\) over 4 rank\(s\)\)/);
    const file = join(dir, 'tp.json');
    writeFileSync(file, JSON.stringify({ '0': [0, 0, 9], '1': [0, 1], '3': [] }));
    const bad = await runCli(['verify-tp', '--tp-groups', file, '--world-size', '4', '--json'], { env });
    expect(bad.code).toBe(1);
    const rep = JSON.parse(bad.stdout);
    expect(rep.problems.map((p: { check: string }) => p.check).sort()).toEqual([
      'rank-out-of-range',
      'tp-duplicate',
      'tp-empty',
      'tp-outside-groups',
      'tp-overlap',
    ]);
    expect(rep.warnings.map((p: { check: string }) => p.check)).toEqual(['tp-group-ids']);
    const envOnly = await runCli(['verify-tp', '--world-size', '2'], {
      env: { ...env, HOTWEIGHTS_TP_GROUPS: '{"0": [0], "1": [1]}' },
    });
    expect(envOnly.code).toBe(0);
    const malformed = await runCli(['verify-tp', '--tp-groups', '{"zero": [0]}', '--world-size', '1'], {
      env,
    });
    expect(malformed.code).toBe(1);
    expect(malformed.stderr).toMatch(/TP groups: zero: expected a group id/);
  });
});
