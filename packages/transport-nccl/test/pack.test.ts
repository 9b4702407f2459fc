/**
 * The package as users get it (mirrors transport-mpi's pack test): packed with the prebuilt addon
 * its `prebuildify` script makes on `prepack`, installed with the CLI into a fresh application on
 * a PATH that has no compiler, discovered by `hotweights transports` (unavailable here, saying
 * why), then selected and run over the stand-in device libraries (test doubles of NCCL and the
 * CUDA runtime, built by this test before the compiler is out of reach).
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packWorkspacePackages, toolBin, workspaceClosure } from '@hotweights/release-tools/pack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, jsonLines, startRanks } from '../../transport-ucx/test/ranks.js';
import { PACKAGE_ROOT } from '../src/native.js';
import { buildStandins } from './standin.js';

const REPO_ROOT = join(PACKAGE_ROOT, '../..');
const TUPLE = `${process.platform}-${process.arch}`;
const standins = buildStandins();
const tmp = mkdtempSync(join(tmpdir(), 'hw-nccl-pack-'));
const app = join(tmp, 'app');
const bin = join(tmp, 'bin');
afterAll(() => {
  standins.remove();
  rmSync(tmp, { recursive: true, force: true });
});

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

interface Listing {
  selected: string;
  transports: { name: string; origin: string; available: boolean; reason?: string; detail?: string }[];
}

describe('packed, installed without a compiler, discovered, probed and run', () => {
  let path = '';
  beforeAll(() => {
    const dirs = workspaceClosure([
      '@hotweights/cli',
      '@hotweights/compliance',
      '@hotweights/transport-nccl',
    ]);
    run('npx', ['tsc', '-b', ...dirs], REPO_ROOT);
    const tarballs = packWorkspacePackages(dirs, { destination: tmp, scratch: join(tmp, 'src') });
    mkdirSync(app);
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module', allowScripts: { zeromq: false } }),
    );
    copyFileSync(
      join(PACKAGE_ROOT, 'test/fixtures/installed-compliance.mjs'),
      join(app, 'installed-compliance.mjs'),
    );
    path = toolBin(bin, ['node', 'npm', 'npx', 'sh']);
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], app, {
      PATH: path,
      npm_config_strict_allow_scripts: 'false',
    });
  }, 300_000);

  it('ships the prebuilt addon and installs on a PATH without a compiler', () => {
    const none = spawnSync('sh', ['-c', 'command -v gcc g++ cc c++ make'], {
      env: { PATH: path },
      encoding: 'utf8',
    });
    expect(none.stdout).toBe('');
    const installed = join(app, 'node_modules/@hotweights/transport-nccl');
    expect(readdirSync(join(installed, 'prebuilds', TUPLE)).some((f) => f.endsWith('.node'))).toBe(true);
    expect(existsSync(join(installed, 'build'))).toBe(false); // nothing was compiled
  });

  it('is discovered by `hotweights transports`, unavailable here with the reason', () => {
    const out = run(join(app, 'node_modules/.bin/hotweights'), ['transports', '--json'], app, { PATH: path });
    const nccl = (JSON.parse(out) as Listing).transports.find((t) => t.name === 'nccl');
    expect(nccl).toMatchObject({ origin: '@hotweights/transport-nccl', available: false });
    expect(nccl?.reason).toMatch(/^no libnccl\.so\.2 /);
  });

  it('is selected over the stand-ins with a rendezvous, and passes the compliance suite with 2 ranks', async () => {
    const env = {
      PATH: path,
      ...standins.env,
      MASTER_ADDR: '127.0.0.1',
      MASTER_PORT: String(await freePort()),
    };
    const listed = JSON.parse(
      run(join(app, 'node_modules/.bin/hotweights'), ['transports', '--json'], app, {
        ...env,
        RANK: '0',
        WORLD_SIZE: '2',
      }),
    ) as Listing;
    expect(listed.selected).toBe('nccl');
    expect(listed.transports.find((t) => t.name === 'nccl')?.detail).toMatch(
      /^NCCL 2\.19\.3, CUDA runtime 12\.4, 1 device\(s\), 2 ranks, rank 0 at 127\.0\.0\.1:\d+$/,
    );
    const job = await startRanks(2, ['installed-compliance.mjs'], { cwd: app, env });
    const results = await job.done;
    for (const r of results) expect(r.code, r.stderr).toBe(0);
    const lines = jsonLines<{ rank: number; addon: string; passed: number }>(
      results.map((r) => r.stdout).join(''),
    );
    expect(lines.map((l) => l.rank).sort()).toEqual([0, 1]);
    for (const l of lines) {
      expect(l.addon).toContain(join(app, 'node_modules/@hotweights/transport-nccl/prebuilds', TUPLE));
      expect(l.passed).toBeGreaterThanOrEqual(10);
    }
  }, 120_000);
});
