/**
 * Patch items end to end (issue #16) through the real CLI: `plan --patches` between published
 * RL-like steps, `replicate --commit` to two local ranks into directory targets. Byte-exact
 * landing of a plan mixing full and patch items, a chain v0 -> v1 -> v2, and the refusals: a rank
 * on v0 given v1's patches, a corrupted patch byte, a live base whose bytes are not the plan's.
 */
import { existsSync, readdirSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { publish, writeManifest } from '@hotweights/planner';
import { beforeAll, describe, expect, it } from 'vitest';
import { firstStep, nextStep, PATCH_FILES, writeStep } from './patch-checkpoints.js';
import { runCli } from './run-cli.js';
import { cliWorkspace } from './workspace.js';

const { work, env: workspaceEnv } = cliWorkspace('hw-cli-patches-');
const env = {
  ...workspaceEnv,
  // Checkpoints and patch files all live under work.
  HOTWEIGHTS_SOURCE_ROOTS: work,
  HOTWEIGHTS_TRANSFER_TIMEOUT_S: '30',
};

const step = (n: number) => join(work, `step-${n}`);
const manifest = (n: number) => join(work, `m${n}.json`);

function expectTree(dir: string, checkpoint: string) {
  for (const f of PATCH_FILES)
    expect(Buffer.compare(readFileSync(join(dir, f)), readFileSync(join(checkpoint, f))), `${dir}/${f}`).toBe(
      0,
    );
}

const live = (target: string, rank: number) =>
  readlinkSync(join(target, `rank-${rank}`, 'current'))
    .split('/')
    .pop();

async function plan(out: string, prev: number | null, next: number, patches: boolean) {
  const r = await runCli(
    [
      'plan',
      ...(prev === null ? [] : ['--prev', manifest(prev)]),
      '--next',
      manifest(next),
      '--output',
      join(work, out),
      '--world-size',
      '2',
      '--bucket-mb',
      '0.0625',
      ...(patches ? ['--patches'] : []),
    ],
    { env },
  );
  expect(r.code, r.stderr).toBe(0);
  return join(work, out);
}

const replicate = (planFile: string, target: string) =>
  runCli(
    ['replicate', '--plan', planFile, '--world-size', '2', '--commit', '--target', target, '--no-metrics'],
    {
      env,
    },
  );

describe('patch items through plan --patches and replicate', { timeout: 240_000 }, () => {
  const plans: Record<string, string> = {};
  beforeAll(async () => {
    const s0 = firstStep();
    const s1 = nextStep(s0);
    const s2 = nextStep(s1);
    for (const [n, s] of [s0, s1, s2].entries()) {
      await writeStep(step(n), s);
      await writeManifest(
        await publish({ checkpoint: step(n), version: `v${n}`, modelId: 'test/patches' }),
        manifest(n),
      );
    }
    plans.full = await plan('full.json', null, 0, false);
    plans.p1 = await plan('p1.json', 0, 1, true);
    plans.p2 = await plan('p2.json', 1, 2, true);
  }, 120_000);

  it('lands a plan mixing full and patch items byte-exact on 2 ranks, then the next patches (v0 -> v1 -> v2)', async () => {
    const p1 = JSON.parse(readFileSync(plans.p1 as string, 'utf8'));
    expect(p1.plan_version).toBe(2);
    const items = p1.buckets.flatMap((b: { items: { key: string; patch?: unknown }[] }) => b.items);
    const patched = items.filter((it: { patch?: unknown }) => it.patch).map((it: { key: string }) => it.key);
    expect(patched.sort()).toEqual(['layers.0.b:0', 'layers.0.w:0', 'layers.1.b:0', 'layers.1.w:0']);
    // The embedding changed entirely: its patch would be larger, so it moves whole.
    expect(items.find((it: { key: string }) => it.key === 'embed:0').patch).toBeUndefined();
    expect(p1.total_bytes).toBeLessThan(p1.checkpoint_bytes / 2);
    const verified = await runCli(['verify-plan', '--plan', plans.p1 as string], { env });
    expect(verified.code, verified.stdout + verified.stderr).toBe(0);

    const target = join(work, 'chain');
    for (const [name, n] of [
      ['full', 0],
      ['p1', 1],
      ['p2', 2],
    ] as const) {
      const r = await replicate(plans[name] as string, target);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toMatch(new RegExp(`committed v${n} on every rank`));
      for (const rank of [0, 1]) expectTree(join(target, `rank-${rank}`, 'current'), step(n));
    }
  });

  it('refuses v1 -> v2 patches on ranks still on v0, and a corrupted patch byte, before anything commits', async () => {
    const target = join(work, 'behind');
    expect((await replicate(plans.full as string, target)).code).toBe(0);
    const skipped = await replicate(plans.p2 as string, target);
    expect(skipped.code).not.toBe(0);
    expect(skipped.stderr).toMatch(/plan v2 is a delta from v1, but the target holds v0/);
    for (const rank of [0, 1]) {
      expect(live(target, rank)).toBe('v0');
      expectTree(join(target, `rank-${rank}`, 'current'), step(0));
    }

    // A plan of its own, so the shared patch file stays intact; one byte of one patch flips.
    const bad = await plan('p1-bad.json', 0, 1, true);
    const patchFile = `${bad}.patches`;
    const bytes = readFileSync(patchFile);
    bytes[Math.floor(bytes.length / 2)] = (bytes[Math.floor(bytes.length / 2)] as number) ^ 0x40;
    writeFileSync(patchFile, bytes);
    const corrupt = await replicate(bad, target);
    expect(corrupt.code).not.toBe(0);
    expect(corrupt.stderr).toMatch(/patch of item \S+ .* does not match its hash/);
    for (const rank of [0, 1]) {
      expect(live(target, rank)).toBe('v0');
      expectTree(join(target, `rank-${rank}`, 'current'), step(0));
      expect(
        readdirSync(join(target, `rank-${rank}`, 'versions')).filter((d) => d.includes('partial')),
      ).toEqual([]);
    }
  });

  it('refuses --patches without a readable previous checkpoint, leaving no patch file', async () => {
    const out = join(work, 'unreadable.json');
    const r = await runCli(
      [
        'plan',
        '--prev',
        manifest(0),
        '--next',
        manifest(1),
        '--output',
        out,
        '--patches',
        '--prev-checkpoint',
        join(work, 'gone'),
      ],
      { env },
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /--patches: cannot read model-00001\.safetensors of version v0 in \S+gone \(ENOENT\): pass the directory it was published from/,
    );
    expect(existsSync(`${out}.patches`)).toBe(false);
    expect(existsSync(out)).toBe(false);
  });

  it("fails the rank whose live base is not the patch's base (its prepare), and nothing commits anywhere", async () => {
    const target = join(work, 'tampered');
    expect((await replicate(plans.full as string, target)).code).toBe(0);
    // Rank 1's live v0 is not v0's bytes any more (first and last bytes of the layer tensors).
    const file = join(target, 'rank-1', 'current', PATCH_FILES[0] as string);
    const bytes = readFileSync(file);
    const headerEnd = 8 + Number(bytes.readBigUInt64LE(0));
    for (const at of [headerEnd, bytes.length - 1]) bytes[at] = (bytes[at] as number) ^ 0x01;
    writeFileSync(file, bytes);
    const r = await replicate(plans.p1 as string, target);
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/rank 1: item layers\.\S+ of v1: the live base does not match the patch's base/);
    for (const rank of [0, 1]) expect(live(target, rank)).toBe('v0');
    expectTree(join(target, 'rank-0', 'current'), step(0));
    // Rank 0 prepared v1 (its base is right) and discards it when the launcher stops it. Only a
    // rank that did not stop within the grace is killed before its discard; the failure says so,
    // and the next update of the target removes what it left.
    const leftover = join(target, 'rank-0', 'versions', 'v1');
    if (!/rank\(s\) 0 did not stop .* were killed/.test(r.stderr)) expect(existsSync(leftover)).toBe(false);
    // The base is repaired; the next update lands, and nothing of the failed one is left.
    writeFileSync(file, readFileSync(join(step(0), PATCH_FILES[0] as string)));
    expect((await replicate(plans.p1 as string, target)).code).toBe(0);
    for (const rank of [0, 1]) expect(live(target, rank)).toBe('v1');
    for (const rank of [0, 1])
      expect(
        readdirSync(join(target, `rank-${rank}`, 'versions')).filter((n) => n.includes('.partial-')),
      ).toEqual([]);
  });
});
