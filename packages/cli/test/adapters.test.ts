import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from './run-cli.js';

interface Report {
  selected: string | null;
  wanted: string;
  adapters: { name: string; origin: string; version: string | null; available: boolean; reason?: string }[];
}

/** An application directory with an installed adapter package (real files, real imports). */
let app: string;
beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), 'hw-cli-adapters-'));
  writeFileSync(join(app, 'package.json'), '{"name":"app","version":"1.0.0","private":true}');
  const dir = join(app, 'node_modules', 'hotweights-adapter-shelf');
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name: 'hotweights-adapter-shelf',
      version: '2.7.1',
      type: 'module',
      keywords: ['hotweights-adapter'],
      hotweights: { adapter: './index.js', coreApi: '^1.0.0' },
    }),
  );
  writeFileSync(
    join(dir, 'index.js'),
    `export const provider = { name: 'shelf', description: 'a shelf',
      probe: async (o) => o.settings?.room === 'yes' ? { available: true } : { available: false, reason: 'no room' },
      create: async () => { throw new Error('not used by this test'); } };\n`,
  );
});
afterAll(() => rmSync(app, { recursive: true, force: true }));

async function report(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Report> {
  const r = await runCli(['adapters', '--json', ...args], { cwd: app, env });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

describe('hotweights adapters', { timeout: 60_000 }, () => {
  it('lists the built-in and installed adapters; the default is memory, or directory with --target', async () => {
    const rep = await report();
    // The CLI also finds adapter packages installed beside itself (in this monorepo, the
    // workspace's @hotweights/adapter-vllm); the app's own are the ones under test.
    const listed = rep.adapters.filter((a) => !a.origin.startsWith('@hotweights/'));
    expect(listed.map((a) => [a.name, a.origin, a.available])).toEqual([
      ['directory', 'builtin', false],
      ['memory', 'builtin', true],
      ['shelf', 'hotweights-adapter-shelf', false],
    ]);
    expect(listed[2]).toMatchObject({ version: '2.7.1', reason: 'no room' });
    expect(rep.selected).toBe('memory');
    expect((await report(['--target', app])).selected).toBe('directory');
  });

  it('selects by --adapter or HOTWEIGHTS_ADAPTER, with adapter options passed to the probe', async () => {
    expect(await report(['--adapter', 'shelf', '--adapter-option', 'room=yes'])).toMatchObject({
      selected: 'shelf',
    });
    const text = await runCli(['adapters', '--adapter-option', 'room=yes'], {
      cwd: app,
      env: { HOTWEIGHTS_ADAPTER: 'shelf' },
    });
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/^\* shelf\s+2\.7\.1\s+hotweights-adapter-shelf\s+available\s+a shelf$/m);
    expect(text.stdout.trim().split('\n').at(-1)).toBe('selected: shelf');
  });

  it('naming an adapter that cannot be used lists everything, then fails with one line', async () => {
    const r = await runCli(['adapters', '--adapter', 'shelf'], { cwd: app });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/^\s+shelf\s.*unavailable: no room/m);
    expect(r.stderr.trim()).toMatch(
      /^hotweights: error \[HW_NO_ADAPTER\]: adapter "shelf" is unavailable: no room \(/,
    );
    const bad = await runCli(['adapters', '--adapter-option', 'room'], { cwd: app });
    expect(bad.code).toBe(1);
    expect(bad.stderr.trim()).toBe(
      'hotweights: error [HW_CONFIG]: --adapter-option "room": expected KEY=VALUE (e.g. --adapter-option partial=true)',
    );
  });
});
