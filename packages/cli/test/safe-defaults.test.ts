/**
 * Private and bounded by default: coord-serve refuses a non-loopback address without a token,
 * metrics listen on the endpoint's host, world sizes are capped with clear errors, and replicate
 * verifies a plan (as verify-plan does) before anything moves.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Plan } from '@hotweights/core';
import { parsePlan } from '@hotweights/manifest';
import {
  createPlan,
  planDigest,
  publish,
  writeManifest,
  writePlan,
  writeSafetensors,
} from '@hotweights/planner';
import { beforeAll, describe, expect, it } from 'vitest';
import { startCoordProcess } from './coord-process.js';
import { runCli } from './run-cli.js';
import { cliWorkspace } from './workspace.js';

const { work, env } = cliWorkspace('hw-cli-safe-');

/** The local address a LISTEN socket on `port` is bound to, from /proc/net/tcp (hex, e.g. 0100007F). */
function listenAddress(port: number): string | undefined {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const [, local, , state] = line.trim().split(/\s+/);
    if (state === '0A' && local?.endsWith(`:${hexPort}`)) return local.split(':')[0];
  }
  return undefined;
}

describe('coord-serve defaults', () => {
  it('refuses a non-loopback endpoint without a token, naming the fix', async () => {
    const r = await runCli(['coord-serve', '--endpoint', 'tcp://0.0.0.0:5999', '--metrics-port', 'off'], {
      env: { ...env, HOTWEIGHTS_COORD_TOKEN: undefined },
    });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('coord-serve on tcp://0.0.0.0:5999 without a token');
    expect(r.stderr).toContain('HOTWEIGHTS_COORD_TOKEN');
    expect(r.stderr).toContain('--insecure');
  });

  it('serves metrics on the loopback endpoint host, or on HOTWEIGHTS_METRICS_HOST', async () => {
    for (const [extra, expected] of [
      [{}, '0100007F'], // 127.0.0.1
      [{ HOTWEIGHTS_METRICS_HOST: '127.0.0.2' }, '0200007F'],
    ] as const) {
      const coord = await startCoordProcess({ ...env, ...extra });
      try {
        const url = /metrics (http:\S+)/.exec(coord.output())?.[1] ?? '';
        const port = Number(new URL(url).port);
        expect(listenAddress(port)).toBe(expected);
      } finally {
        await coord.stop();
      }
    }
  });
});

describe('world size caps', () => {
  let dir: string;
  beforeAll(async () => {
    dir = join(work, 'ckpt');
    mkdirSync(dir, { recursive: true });
    await writeSafetensors(join(dir, 'model.safetensors'), {
      w: { dtype: 'F32', shape: [64, 64], data: randomBytes(64 * 64 * 4) },
    });
    const m = await publish({ checkpoint: dir, version: 'v0', modelId: 'test/safe' });
    await writeManifest(m, join(work, 'm0.json'));
    await writePlan(
      createPlan({
        prev: null,
        next: m,
        checkpointRoot: dir,
        nextManifestPath: join(work, 'm0.json'),
        bucketBytes: 4096,
        worldSize: 1,
      }),
      join(work, 'plan.json'),
    );
  }, 60_000);

  it('plan --world-size 2147483648 is a one-line error, not an out-of-memory abort', async () => {
    const r = await runCli(
      [
        'plan',
        '--next',
        join(work, 'm0.json'),
        '--checkpoint',
        dir,
        '--world-size',
        '2147483648',
        '--output',
        join(work, 'p.json'),
      ],
      { env },
    );
    expect(r.stderr.trim()).toBe(
      'hotweights: error [HW_CONFIG]: --world-size 2147483648: expected an integer in 1..65536',
    );
    expect(r.code).toBe(1);
  });

  it('replicate refuses a plan for more ranks than one host runs, before starting any', async () => {
    const plan = parsePlan(readFileSync(join(work, 'plan.json'), 'utf8'));
    const huge = edited(plan, { world_size: 5000 });
    const r = await runCli(['replicate', '--plan', huge, '--no-metrics'], { env });
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('is for 5000 ranks; replicate starts at most 1024 on one host');
  });

  it('replicate --commit refuses what verify-plan rejects, and nothing moves', async () => {
    const plan = parsePlan(readFileSync(join(work, 'plan.json'), 'utf8'));
    const target = join(work, 'target');
    // An unknown hash algorithm is refused when the plan is loaded (its schema names the field);
    // a plan that loads but does not add up is refused by the verification verify-plan runs.
    for (const [change, findings] of [
      [{ hash_algo: 'md5' }, ['hash_algo: expected one of blake3, xxh3-64, sha256 (got "md5")']],
      [{ total_bytes: plan.total_bytes + 8 }, ['plan verification failed', '[total-bytes] total_bytes']],
    ] as const) {
      const file = edited(plan, change);
      const check = await runCli(['verify-plan', '--plan', file], { env });
      expect(check.code).toBe(1);
      const r = await runCli(['replicate', '--plan', file, '--commit', '--target', target, '--no-metrics'], {
        env,
      });
      expect(r.code).toBe(1);
      for (const finding of findings) expect(r.stderr).toContain(finding);
      expect(existsSync(target)).toBe(false);
    }
  });
});

let edits = 0;
/** A hand-edited copy of `plan` with a digest that matches the edit (so only verification can tell). */
function edited(plan: Plan, change: Partial<Record<keyof Plan, unknown>>): string {
  const { digest: _, ...body } = { ...plan, ...change } as Plan;
  const file = join(work, `edited-${++edits}.json`);
  writeFileSync(file, JSON.stringify({ ...body, digest: planDigest(body) }));
  return file;
}

describe('source roots', () => {
  it('reads only checkpoints published here or allowed, and prints nothing of other directories', async () => {
    const ckpt = join(work, 'roots-ckpt');
    mkdirSync(ckpt, { recursive: true });
    writeFileSync(join(ckpt, 'weights.bin'), randomBytes(4096));
    const stateDir = join(work, 'roots-state');
    const rootsEnv = { ...env, HOTWEIGHTS_STATE_DIR: stateDir };
    const m = await publish({ checkpoint: ckpt, version: 'v0' });
    await writeManifest(m, join(work, 'roots-m0.json'));
    const planFile = join(work, 'roots-plan.json');
    await writePlan(
      createPlan({
        prev: null,
        next: m,
        checkpointRoot: ckpt,
        nextManifestPath: join(work, 'roots-m0.json'),
        bucketBytes: 4096,
        worldSize: 1,
      }),
      planFile,
    );
    // A plan pointing at an unrelated directory that holds a file of the same name.
    const other = join(work, 'unrelated');
    mkdirSync(other, { recursive: true });
    writeFileSync(join(other, 'weights.bin'), randomBytes(4096));
    const foreign = edited(parsePlan(readFileSync(planFile, 'utf8')), {
      source: { root: other, rank: 0 },
    });

    const refused = await runCli(['replicate', '--plan', foreign, '--no-metrics'], { env: rootsEnv });
    expect(refused.code).toBe(1);
    expect(refused.stderr).toContain(`plan source.root ${other} is not an allowed checkpoint root`);
    // No hash of anything (main printed the unrelated file's hash in a verification error).
    expect(refused.stderr).not.toMatch(/[0-9a-f]{32}/);

    // Nothing published on this host yet: the real checkpoint is refused too, until allowed...
    expect((await runCli(['replicate', '--plan', planFile, '--no-metrics'], { env: rootsEnv })).code).toBe(1);
    const allowed = await runCli(['replicate', '--plan', planFile, '--no-metrics'], {
      env: { ...rootsEnv, HOTWEIGHTS_SOURCE_ROOTS: ckpt },
    });
    expect(allowed.code, allowed.stderr).toBe(0);
    // ...or published here with the CLI, which records its root.
    const pub = await runCli(
      ['publish', '--checkpoint', ckpt, '--version', 'v0', '--output', join(work, 'roots-m0b.json')],
      { env: rootsEnv },
    );
    expect(pub.code, pub.stderr).toBe(0);
    const after = await runCli(['replicate', '--plan', planFile, '--no-metrics'], { env: rootsEnv });
    expect(after.code, after.stderr).toBe(0);
    expect((await runCli(['replicate', '--plan', foreign, '--no-metrics'], { env: rootsEnv })).code).toBe(1);
  });
});
