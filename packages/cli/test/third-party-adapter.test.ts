/**
 * An adapter published by a third party, end to end, as a user meets it: the CLI, core and the
 * template adapter (which lives outside the workspace) are built, packed and installed into a
 * fresh application from their tarballs; the installed `hotweights` lists the adapter, and
 * `replicate --adapter kv` commits versions into it, `rollback --adapter kv` moves back.
 */
import { randomBytes } from 'node:crypto';
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { installedCli, installPackedApp, run } from './packed-app.js';
import { REPO_ROOT } from './run-cli.js';

const TEMPLATE = join(REPO_ROOT, 'templates', 'adapter-template');

interface Report {
  selected: string | null;
  adapters: { name: string; version: string | null; origin: string; available: boolean; reason?: string }[];
}

let work: string;
let app: string;
/** Each run gets its own state and staging dirs: nothing from the machine's other runs. */
let env: NodeJS.ProcessEnv;

async function hotweights(args: string[], extra: NodeJS.ProcessEnv = {}) {
  const r = await installedCli(app, args, { ...env, ...extra });
  // stderr carries progress and notes (plan says what it diffs against); the exit code decides.
  expect(r.code, r.stderr).toBe(0);
  return r.stdout;
}

/** The live version a reader of the kv target sees: STATE.json, its index, the blobs. */
function readKv(target: string): { live: string; previous: string | null; files: Record<string, Buffer> } {
  const state = JSON.parse(readFileSync(join(target, 'STATE.json'), 'utf8')) as {
    live: string;
    previous: string | null;
  };
  const index = JSON.parse(
    readFileSync(join(target, 'versions', `${encodeURIComponent(state.live)}.json`), 'utf8'),
  ) as { items: Record<string, { blob: string }> };
  const files = Object.fromEntries(
    Object.entries(index.items).map(([key, { blob }]) => [
      key.replace(/:0$/, ''),
      readFileSync(join(target, 'blobs', blob)),
    ]),
  );
  return { ...state, files };
}

beforeAll(async () => {
  work = mkdtempSync(join(tmpdir(), 'hw-third-party-adapter-'));
  // Build what is packed: the CLI and what it references, then the template against core's
  // built output (as a third party builds against the published core).
  await run('npx', ['tsc', '-b', 'packages/cli'], { cwd: REPO_ROOT });
  await run('npx', ['tsc', '-p', 'templates/adapter-template'], { cwd: REPO_ROOT });
  app = await installPackedApp(work, [TEMPLATE]);
  mkdirSync(join(work, 'staging'));
  env = { HOTWEIGHTS_STATE_DIR: join(work, 'state'), HOTWEIGHTS_STAGING_DIR: join(work, 'staging') };
}, 240_000);

afterAll(() => {
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('a third-party adapter installed next to the CLI', { timeout: 60_000 }, () => {
  it('is listed with its version and origin, unavailable without a target and available with one', async () => {
    const without = JSON.parse(await hotweights(['adapters', '--json'])) as Report;
    // The CLI ships the trainer and vllm adapters too (its opt-check and kv-check use them).
    expect(without.adapters.map((a) => a.name)).toEqual(['directory', 'kv', 'memory', 'trainer', 'vllm']);
    expect(without.adapters.find((a) => a.name === 'kv')).toEqual(
      expect.objectContaining({
        version: '0.1.0',
        origin: 'hotweights-adapter-kv',
        available: false,
        reason: 'needs a target directory (--target DIR)',
      }),
    );
    const withTarget = JSON.parse(
      await hotweights(['adapters', '--json', '--target', join(work, 'kv'), '--adapter', 'kv']),
    ) as Report;
    expect(withTarget.selected).toBe('kv');
    expect(withTarget.adapters.find((a) => a.name === 'kv')?.available).toBe(true);
  });

  it('takes a full update and a delta from `replicate --adapter kv`, and rolls back', async () => {
    const ckpt = join(work, 'ckpt');
    const target = join(work, 'kv');
    mkdirSync(ckpt);
    writeFileSync(join(ckpt, 'weights.bin'), randomBytes(5000));
    writeFileSync(join(ckpt, 'config.json'), '{"layers": 2}\n');
    await hotweights([
      'publish',
      '--checkpoint',
      ckpt,
      '--version',
      'v0',
      '--output',
      join(work, 'm0.manifest'),
    ]);
    await hotweights(['plan', '--next', join(work, 'm0.manifest'), '--output', join(work, 'p0.json')]);
    await hotweights([
      'replicate',
      '--plan',
      join(work, 'p0.json'),
      '--commit',
      '--adapter',
      'kv',
      '--target',
      target,
      '--no-metrics',
    ]);
    const v0 = readKv(target);
    expect(v0.live).toBe('v0');
    expect(v0.files['weights.bin']?.equals(readFileSync(join(ckpt, 'weights.bin')))).toBe(true);
    expect(v0.files['config.json']?.toString()).toBe('{"layers": 2}\n');

    const v0weights = readFileSync(join(ckpt, 'weights.bin'));
    appendFileSync(join(ckpt, 'weights.bin'), randomBytes(300));
    await hotweights([
      'publish',
      '--checkpoint',
      ckpt,
      '--version',
      'v1',
      '--output',
      join(work, 'm1.manifest'),
    ]);
    await hotweights([
      'plan',
      '--prev',
      join(work, 'm0.manifest'),
      '--next',
      join(work, 'm1.manifest'),
      '--output',
      join(work, 'p1.json'),
    ]);
    // HOTWEIGHTS_ADAPTER chooses it too.
    await hotweights(
      ['replicate', '--plan', join(work, 'p1.json'), '--commit', '--target', target, '--no-metrics'],
      {
        HOTWEIGHTS_ADAPTER: 'kv',
      },
    );
    const v1 = readKv(target);
    expect(v1).toMatchObject({ live: 'v1', previous: 'v0' });
    expect(v1.files['weights.bin']?.equals(readFileSync(join(ckpt, 'weights.bin')))).toBe(true);
    expect(v1.files['config.json']?.toString()).toBe('{"layers": 2}\n');

    expect(await hotweights(['rollback', '--target', target, '--adapter', 'kv'])).toMatch(
      /switched from v1 to the previous version v0/,
    );
    const back = readKv(target);
    expect(back).toMatchObject({ live: 'v0', previous: 'v1' });
    expect(back.files['weights.bin']?.equals(v0weights)).toBe(true);
  });
});
