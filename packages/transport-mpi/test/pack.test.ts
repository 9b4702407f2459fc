/**
 * The package as users get it: packed with its prebuilt addon, installed with the CLI into a
 * fresh application on a PATH that has no compiler, discovered by `hotweights transports` and
 * selected under mpirun.
 */
import { spawnSync } from 'node:child_process';
import {
  copyFileSync,
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
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { packWorkspace, run, toolBin } from '../../../scripts/pack-workspace.js';
import { jsonLines, MPI_ENV, mpirun, REPO_ROOT } from './mpirun.js';

const tmp = mkdtempSync(join(tmpdir(), 'hw-mpi-pack-'));
const app = join(tmp, 'app');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

// mpirun looks for ssh/rsh even for local ranks unless the launcher is told it is one host.
const LOCAL_ONLY = ['--mca', 'plm', 'isolated'];

describe('packed, installed without a compiler, discovered and selected', () => {
  let path = '';
  beforeAll(() => {
    const tarballs = packWorkspace(['@hotweights/cli', '@hotweights/transport-mpi'], tmp);
    mkdirSync(app);
    // zeromq works with its install script denied. Packages installed from tarball files are not
    // matched by name in allowScripts, so the install runs with npm's default (non-strict) policy,
    // as a user's would: our install step is node-gyp-build, which finds the prebuild.
    const allowScripts = { zeromq: false };
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module', allowScripts }),
    );
    copyFileSync(
      join(REPO_ROOT, 'packages/transport-mpi/test/fixtures/installed-compliance.mjs'),
      join(app, 'compliance.mjs'),
    );
    path = toolBin(join(tmp, 'bin'), ['node', 'npm', 'npx', 'sh', 'mpirun']);
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], app, {
      PATH: path,
      npm_config_strict_allow_scripts: 'false',
    });
  }, 240_000);

  it('ships a prebuilt addon and installs on a PATH without a compiler', () => {
    const none = spawnSync('sh', ['-c', 'command -v gcc g++ cc c++ make'], {
      env: { PATH: path },
      encoding: 'utf8',
    });
    expect(none.stdout).toBe('');
    const installed = join(app, 'node_modules/@hotweights/transport-mpi');
    expect(readdirSync(join(installed, 'prebuilds/linux-x64')).some((f) => f.endsWith('.node'))).toBe(true);
    expect(existsSync(join(installed, 'build'))).toBe(false); // nothing was compiled
  });

  it('is discovered by `hotweights transports` and unavailable outside mpirun, with the reason', () => {
    const out = run(join(app, 'node_modules/.bin/hotweights'), ['transports', '--json'], app, { PATH: path });
    const report = JSON.parse(out) as {
      selected: string;
      transports: { name: string; origin: string; available: boolean; reason?: string }[];
    };
    const mpi = report.transports.find((t) => t.name === 'mpi');
    expect(mpi).toMatchObject({ origin: '@hotweights/transport-mpi', available: false });
    expect(mpi?.reason).toContain('run under mpirun');
    expect(report.selected).not.toBe('mpi');
  });

  it('is selected under mpirun -n 2 on every rank', async () => {
    const out = join(tmp, 'out');
    const job = await mpirun(
      2,
      [
        ...LOCAL_ONLY,
        '--output-filename',
        out,
        join(app, 'node_modules/.bin/hotweights'),
        'transports',
        '--json',
      ],
      {
        cwd: app,
        env: { ...MPI_ENV, PATH: path },
      },
    );
    expect(job.code).toBe(0);
    for (const rank of [0, 1]) {
      const report = JSON.parse(readFileSync(join(out, '1', `rank.${rank}`, 'stdout'), 'utf8')) as {
        selected: string;
        transports: { name: string; detail?: string }[];
      };
      expect(report.selected).toBe('mpi');
      expect(report.transports.find((t) => t.name === 'mpi')?.detail).toMatch(/^Open MPI v\d.*, 2 ranks$/);
    }
  }, 60_000);

  it('moves bytes through the installed prebuilt addon (compliance under mpirun -n 3)', async () => {
    const job = await mpirun(3, [...LOCAL_ONLY, 'node', 'compliance.mjs'], { cwd: app, env: { PATH: path } });
    expect(job.stderr).toBe('');
    expect(job.code).toBe(0);
    const lines = jsonLines<{ rank: number; addon: string; passed: number }>(job.stdout);
    expect(lines.map((l) => l.rank).sort()).toEqual([0, 1, 2]);
    for (const l of lines) {
      expect(l.addon).toContain(join(app, 'node_modules/@hotweights/transport-mpi/prebuilds/linux-x64'));
      expect(l.passed).toBeGreaterThanOrEqual(12);
    }
  }, 90_000);
});
