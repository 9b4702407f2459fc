/**
 * The package as users get it: packed, installed with the CLI into a fresh application on a PATH
 * that has no compiler (koffi's prebuilt binary comes from the registry, its install script
 * denied), discovered by `hotweights transports`, probed, selected, and moving bytes.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, jsonLines, ourErrors, PACKAGE_ROOT, REPO_ROOT, startRanks } from './ranks.js';

const tmp = mkdtempSync(join(tmpdir(), 'hw-ucx-pack-'));
const app = join(tmp, 'app');
const bin = join(tmp, 'bin');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Pkg {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
}

/** Workspace folders of the @hotweights/* packages the CLI and this transport need at run time. */
function closure(): string[] {
  const byName = new Map<string, string>();
  for (const dir of readdirSync(join(REPO_ROOT, 'packages'))) {
    const file = join(REPO_ROOT, 'packages', dir, 'package.json');
    if (existsSync(file)) byName.set((JSON.parse(readFileSync(file, 'utf8')) as Pkg).name, dir);
  }
  const out = new Set<string>();
  const visit = (name: string) => {
    const dir = byName.get(name);
    if (!dir || out.has(dir)) return;
    out.add(dir);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'packages', dir, 'package.json'), 'utf8')) as Pkg;
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
  };
  visit('@hotweights/cli');
  visit('@hotweights/transport-ucx');
  return [...out];
}

function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

interface Report {
  selected: string;
  transports: { name: string; origin: string; available: boolean; reason?: string; detail?: string }[];
}

describe('packed, installed without a compiler, discovered, probed and selected', () => {
  let path = '';
  beforeAll(() => {
    const dirs = closure();
    run('npx', ['tsc', '-b', ...dirs.map((d) => `packages/${d}`)], REPO_ROOT);
    const tarballs = dirs.map((dir) => {
      let cwd = join(REPO_ROOT, 'packages', dir);
      if (existsSync(join(cwd, 'binding.gyp'))) {
        // Native packages of the CLI (the planner) ship prebuilds: make them in a copy, so the
        // build folders other tests load addons from are never rewritten under them.
        const copy = join(tmp, 'src', dir);
        cpSync(cwd, copy, {
          recursive: true,
          filter: (p) => !/[/\\](node_modules|build|prebuilds)$/.test(p),
        });
        run(
          process.execPath,
          [join(REPO_ROOT, 'node_modules/prebuildify/bin.js'), '--napi', '--strip'],
          copy,
          {
            npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr',
            NODE_PATH: join(REPO_ROOT, 'node_modules'), // node-addon-api for binding.gyp
          },
        );
        cwd = copy;
      }
      run('npm', ['pack', '--ignore-scripts', '--pack-destination', tmp], cwd);
      const { name, version } = JSON.parse(readFileSync(join(cwd, 'package.json'), 'utf8')) as Pkg;
      return join(tmp, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
    });
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({
        name: 'app',
        private: true,
        type: 'module',
        allowScripts: { zeromq: false, koffi: false },
      }),
    );
    copyFileSync(join(PACKAGE_ROOT, 'test/fixtures/installed-compliance.mjs'), join(app, 'compliance.mjs'));
    mkdirSync(bin);
    for (const tool of ['node', 'npm', 'npx', 'sh']) {
      const found = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
      symlinkSync(realpathSync(found), join(bin, tool));
    }
    path = bin;
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], app, {
      PATH: path,
      npm_config_strict_allow_scripts: 'false',
    });
  }, 240_000);

  it('installs on a PATH without a compiler', () => {
    const none = spawnSync('sh', ['-c', 'command -v gcc g++ cc c++ make'], {
      env: { PATH: path },
      encoding: 'utf8',
    });
    expect(none.stdout).toBe('');
    expect(existsSync(join(app, 'node_modules/@hotweights/transport-ucx/dist/index.js'))).toBe(true);
    expect(existsSync(join(app, 'node_modules/koffi/package.json'))).toBe(true);
  });

  it('is discovered and says why it is unavailable without a rendezvous', () => {
    const out = run(join(app, 'node_modules/.bin/hotweights'), ['transports', '--json'], app, { PATH: path });
    const ucx = (JSON.parse(out) as Report).transports.find((t) => t.name === 'ucx');
    expect(ucx).toMatchObject({
      origin: '@hotweights/transport-ucx',
      available: false,
      reason: 'no rendezvous: set MASTER_ADDR and MASTER_PORT (rank 0 listens there)',
    });
  });

  it('is selected over local when started the torchrun way', async () => {
    const env = {
      PATH: path,
      RANK: '0',
      WORLD_SIZE: '2',
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(await freePort()),
    };
    const report = JSON.parse(
      run(join(app, 'node_modules/.bin/hotweights'), ['transports', '--json'], app, env),
    ) as Report;
    expect(report.selected).toBe('ucx');
    expect(report.transports.find((t) => t.name === 'ucx')?.detail).toMatch(
      /^UCX 1\.\d+\.\d+, 2 ranks, rank 0 listens on 127\.0\.0\.1:\d+$/,
    );
  });

  it('moves bytes through the installed package (compliance in 2 processes)', async () => {
    const job = await startRanks(2, ['compliance.mjs'], { cwd: app, env: { PATH: path } });
    const results = await job.done;
    for (const r of results) {
      expect(ourErrors(r.stderr)).toBe('');
      expect(r.code).toBe(0);
    }
    const lines = results.flatMap((r) =>
      jsonLines<{ rank: number; koffi: string; passed: number }>(r.stdout),
    );
    expect(lines.map((l) => l.rank).sort()).toEqual([0, 1]);
    for (const l of lines) {
      expect(l.koffi).toContain(join(app, 'node_modules/koffi'));
      expect(l.passed).toBeGreaterThanOrEqual(8);
    }
  });
});
