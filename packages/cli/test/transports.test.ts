import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { REPO_ROOT, runCli } from './run-cli.js';

interface Report {
  selected: string | null;
  forced: string | null;
  transports: {
    name: string;
    priority: number;
    version: string | null;
    origin: string;
    available: boolean;
    reason?: string;
    detail?: string | null;
  }[];
}

/** An application directory with two installed transport packages (real files, real imports). */
let app: string;

function installPackage(name: string, coreApi: string, priority: number): void {
  const dir = join(app, 'node_modules', name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(
    join(dir, 'package.json'),
    JSON.stringify({
      name,
      version: '3.1.4',
      type: 'module',
      keywords: ['hotweights-transport'],
      hotweights: { transport: './index.js', coreApi },
    }),
  );
  const short = name.replace(/^hotweights-transport-/, '');
  writeFileSync(
    join(dir, 'index.js'),
    `export default { name: '${short}', priority: ${priority},
      probe: async () => ({ available: true, detail: 'pretend network' }),
      create: async () => { throw new Error('not used by this test'); } };\n`,
  );
}

beforeAll(() => {
  app = mkdtempSync(join(tmpdir(), 'hw-cli-transports-'));
  writeFileSync(join(app, 'package.json'), '{"name":"app","version":"1.0.0","private":true}');
  installPackage('hotweights-transport-fake', '^1.0.0', 1);
  installPackage('hotweights-transport-future', '>=2.0.0', 99);
});
afterAll(() => rmSync(app, { recursive: true, force: true }));

async function report(args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<Report> {
  const r = await runCli(['transports', '--json', ...args], { cwd: app, env });
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  return JSON.parse(r.stdout) as Report;
}

describe('hotweights transports', { timeout: 60_000 }, () => {
  it('--json lists built-in and installed transports with version, origin, availability and reason', async () => {
    const rep = await report();
    const byName = Object.fromEntries(rep.transports.map((t) => [t.name, t]));
    // built-ins show core's version
    const core = JSON.parse(readFileSync(join(REPO_ROOT, 'packages/core/package.json'), 'utf8')) as {
      version: string;
    };
    expect(byName.local).toMatchObject({
      origin: 'builtin',
      available: true,
      priority: 10,
      version: core.version,
    });
    expect(byName.fake).toEqual(
      expect.objectContaining({
        origin: 'hotweights-transport-fake',
        version: '3.1.4',
        priority: 1,
        available: true,
        detail: 'pretend network',
      }),
    );
    expect(byName.future).toEqual(
      expect.objectContaining({
        origin: 'hotweights-transport-future',
        version: '3.1.4',
        available: false,
        reason: 'needs core API >=2.0.0, this hotweights provides 1.1.0',
      }),
    );
    // sorted by priority; the selection is the first available one
    const priorities = rep.transports.map((t) => t.priority);
    expect(priorities).toEqual([...priorities].sort((a, b) => b - a));
    expect(rep.selected).toBe(rep.transports.find((t) => t.available)?.name);
    expect(rep.forced).toBeNull();
  });

  it('prints a table with a row per transport and the selection', async () => {
    const r = await runCli(['transports'], { cwd: app });
    expect(r.code).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^\s+name\s+priority\s+version\s+origin\s+status$/);
    expect(lines.find((l) => /^\s+fake\s/.test(l))).toMatch(
      /fake\s+1\s+3\.1\.4\s+hotweights-transport-fake\s+available \(pretend network\)$/,
    );
    expect(lines.find((l) => /^\s+future\s/.test(l))).toMatch(
      /unavailable: needs core API >=2\.0\.0, this hotweights provides 1\.1\.0$/,
    );
    expect(lines.find((l) => l.startsWith('* '))).toBeDefined();
    expect(lines.at(-1)).toMatch(/^selected: \S+ \(highest priority available\)$/);
  });

  it('selects a forced transport by --transport or HOTWEIGHTS_TRANSPORT', async () => {
    expect(await report(['--transport', 'fake'])).toMatchObject({ selected: 'fake', forced: 'fake' });
    expect(await report([], { HOTWEIGHTS_TRANSPORT: 'fake' })).toMatchObject({
      selected: 'fake',
      forced: 'fake',
    });
    const r = await runCli(['transports', '--transport', 'fake'], { cwd: app });
    expect(r.stdout).toMatch(/^\* fake\s/m);
    expect(r.stdout.trim().split('\n').at(-1)).toBe('selected: fake (forced)');
  });

  it('forcing a missing or unusable transport lists everything, then fails with one line', async () => {
    const missing = await runCli(['transports', '--transport', 'nope'], { cwd: app });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/^\s+fake\s/m);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    expect(missing.stderr).toMatch(
      /^hotweights: error \[HW_NO_TRANSPORT\]: transport "nope" is not installed \(.*future: needs core API >=2\.0\.0/,
    );

    const unusable = await runCli(['transports', '--json', '--transport', 'future'], { cwd: app });
    expect(unusable.code).toBe(1);
    expect((JSON.parse(unusable.stdout) as Report).selected).toBeNull();
    expect(unusable.stderr.trim()).toMatch(
      /^hotweights: error \[HW_NO_TRANSPORT\]: transport "future" is unavailable: needs core API >=2\.0\.0, this hotweights provides 1\.1\.0 \(/,
    );
  });
});
