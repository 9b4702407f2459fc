/**
 * The package as users get it: packed, installed with the CLI into a fresh application on a PATH
 * that has no compiler (koffi's prebuilt binary comes from the registry, its install script
 * denied), discovered by `hotweights transports`, probed, selected, and moving bytes.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  packWorkspacePackages,
  REPO_ROOT,
  run,
  toolBin,
  workspaceClosure,
} from '@hotweights/release-tools/pack';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort, jsonLines, ourErrors, PACKAGE_ROOT, startRanks } from './ranks.js';

const tmp = mkdtempSync(join(tmpdir(), 'hw-ucx-pack-'));
const app = join(tmp, 'app');
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

interface Report {
  selected: string;
  transports: { name: string; origin: string; available: boolean; reason?: string; detail?: string }[];
}

describe('packed, installed without a compiler, discovered, probed and selected', () => {
  let path = '';
  beforeAll(() => {
    const dirs = workspaceClosure(['@hotweights/cli', '@hotweights/transport-ucx', '@hotweights/compliance']);
    run('npx', ['tsc', '-b', ...dirs], REPO_ROOT);
    const tarballs = packWorkspacePackages(dirs, { destination: tmp, scratch: join(tmp, 'src') });
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
    path = toolBin(join(tmp, 'bin'), ['node', 'npm', 'npx', 'sh']);
    run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', ...tarballs], app, {
      ...process.env,
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
    const out = run(join(app, 'node_modules/.bin/hotweights'), ['transports', '--json'], app, {
      ...process.env,
      PATH: path,
    });
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
      run(join(app, 'node_modules/.bin/hotweights'), ['transports', '--json'], app, {
        ...process.env,
        ...env,
      }),
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
