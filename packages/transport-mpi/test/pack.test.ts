/**
 * The packages as users get them: every native package (this one, @hotweights/transport-cuda-ipc,
 * @hotweights/shm and @hotweights/planner) packed with the prebuilt addon its `prebuildify` script makes on `prepack`,
 * installed with the CLI into a fresh application on a PATH that has no compiler, each addon
 * loaded from its prebuild there; this transport discovered by `hotweights transports` and
 * selected under mpirun; the CUDA-IPC transport discovered, unavailable here (no NVIDIA driver)
 * and available over the driver stand-in (a test double of the CUDA driver API, not a GPU).
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
import { packWorkspacePackages, toolBin, workspaceClosure } from '@hotweights/release-tools/pack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { standInLibrary } from '../../transport-cuda-ipc/test/stand-in.js';
import { jsonLines, MPI_ENV, mpirun, REPO_ROOT } from './mpirun.js';

/** Every package with a native addon: each must install from its tarball without a compiler. */
const NATIVE = [
  '@hotweights/transport-mpi',
  '@hotweights/transport-cuda-ipc',
  '@hotweights/shm',
  '@hotweights/planner',
];
const TUPLE = `${process.platform}-${process.arch}`;

const tmp = mkdtempSync(join(tmpdir(), 'hw-mpi-pack-'));
const app = join(tmp, 'app');
const bin = join(tmp, 'bin');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

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

// mpirun looks for ssh/rsh even for local ranks unless the launcher is told it is one host.
const LOCAL_ONLY = ['--mca', 'plm', 'isolated'];

describe('packed, installed without a compiler, discovered and selected', () => {
  let path = '';
  beforeAll(() => {
    // The CLI and every native package, with what they need at run time.
    const dirs = workspaceClosure(['@hotweights/cli', '@hotweights/compliance', ...NATIVE]);
    run('npx', ['tsc', '-b', ...dirs], REPO_ROOT);
    // As `npm pack` with each package's prepack: the prebuild from its own `prebuildify` script.
    const tarballs = packWorkspacePackages(dirs, { destination: tmp, scratch: join(tmp, 'src') });
    mkdirSync(app);
    // zeromq works with its install script denied. Packages installed from tarball files are not
    // matched by name in allowScripts, so the install runs with npm's default (non-strict) policy,
    // as a user's would: our install step is node-gyp-build, which finds the prebuild.
    const allowScripts = { zeromq: false };
    writeFileSync(
      join(app, 'package.json'),
      JSON.stringify({ name: 'app', private: true, type: 'module', allowScripts }),
    );
    for (const fixture of ['installed-compliance.mjs', 'installed-addons.mjs'])
      copyFileSync(join(REPO_ROOT, 'packages/transport-mpi/test/fixtures', fixture), join(app, fixture));
    path = toolBin(bin, ['node', 'npm', 'npx', 'sh', 'mpirun']);
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], app, {
      PATH: path,
      npm_config_strict_allow_scripts: 'false',
    });
  }, 240_000);

  it('ships a prebuilt addon in every native package and installs on a PATH without a compiler', () => {
    const none = spawnSync('sh', ['-c', 'command -v gcc g++ cc c++ make'], {
      env: { PATH: path },
      encoding: 'utf8',
    });
    expect(none.stdout).toBe('');
    for (const name of NATIVE) {
      const installed = join(app, 'node_modules', name);
      expect(
        readdirSync(join(installed, 'prebuilds', TUPLE)).some((f) => f.endsWith('.node')),
        name,
      ).toBe(true);
      expect(existsSync(join(installed, 'build')), name).toBe(false); // nothing was compiled
      const { scripts } = JSON.parse(readFileSync(join(installed, 'package.json'), 'utf8')) as {
        scripts: Record<string, string>;
      };
      // No machine's path in what ships: headers and tools are the installing user's business.
      expect(JSON.stringify(scripts), name).not.toMatch(/nodedir|\/usr/);
    }
  });

  it('loads the shm and planner addons from their installed prebuilds', () => {
    const out = run('node', ['installed-addons.mjs'], app, { PATH: path });
    const report = JSON.parse(out) as {
      shm: { reason: string | null; addon: string; mapped: number[] };
      planner: { reason: string | null };
    };
    expect(report.shm.reason).toBeNull();
    expect(report.shm.addon).toContain(join(app, 'node_modules/@hotweights/shm/prebuilds', TUPLE));
    expect(report.shm.mapped).toEqual([104, 119]); // the bytes "hw", through the mapping
    expect(report.planner.reason).toBeNull();
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

  it('discovers the CUDA-IPC transport: unavailable without a driver, available over the stand-in', () => {
    type Listing = { transports: { name: string; available: boolean; reason?: string; detail?: string }[] };
    const hotweights = join(app, 'node_modules/.bin/hotweights');
    const none = JSON.parse(run(hotweights, ['transports', '--json'], app, { PATH: path })) as Listing;
    expect(none.transports.find((t) => t.name === 'cuda-ipc')).toMatchObject({
      available: false,
      reason: 'libcuda.so.1 not found (no NVIDIA driver here)',
    });
    // The installed prebuild opens whatever driver library it is given: here the stand-in.
    const env = { PATH: path, HOTWEIGHTS_CUDA_LIBRARY: standInLibrary() };
    const some = JSON.parse(run(hotweights, ['transports', '--json'], app, env)) as Listing;
    expect(some.transports.find((t) => t.name === 'cuda-ipc')).toMatchObject({ available: true });
    expect(some.transports.find((t) => t.name === 'cuda-ipc')?.detail).toMatch(
      /stand-in 0 \(host memory, not a GPU\)/,
    );
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
    const job = await mpirun(3, [...LOCAL_ONLY, 'node', 'installed-compliance.mjs'], {
      cwd: app,
      env: { PATH: path },
    });
    expect(job.stderr).toBe('');
    expect(job.code).toBe(0);
    const lines = jsonLines<{ rank: number; addon: string; passed: number }>(job.stdout);
    expect(lines.map((l) => l.rank).sort()).toEqual([0, 1, 2]);
    for (const l of lines) {
      expect(l.addon).toContain(join(app, 'node_modules/@hotweights/transport-mpi/prebuilds', TUPLE));
      expect(l.passed).toBeGreaterThanOrEqual(12);
    }
  }, 90_000);
});
