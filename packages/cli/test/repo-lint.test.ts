/**
 * `npm run lint` checks the files git tracks: a scratch file someone left in the tree (untracked)
 * does not fail it, and the same file once added does.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from './run-cli.js';

const dir = mkdtempSync(join(tmpdir(), 'hw-lint-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('npm run lint', { timeout: 120_000 }, () => {
  it('ignores untracked scratch files and checks tracked ones', () => {
    const project = JSON.parse(readFileSync(join(REPO_ROOT, 'project.json'), 'utf8')) as {
      targets: { lint: { command: string } };
    };
    const lint = () =>
      spawnSync('sh', ['-c', project.targets.lint.command], {
        cwd: dir,
        encoding: 'utf8',
        env: { ...process.env, PATH: `${join(REPO_ROOT, 'node_modules/.bin')}:${process.env.PATH}` },
      });
    const git = (...args: string[]) => execFileSync('git', args, { cwd: dir, stdio: 'ignore' });
    git('init', '-q');
    copyFileSync(join(REPO_ROOT, 'biome.json'), join(dir, 'biome.json'));
    writeFileSync(join(dir, 'clean.ts'), "export const clean = 'yes';\n");
    git('add', 'biome.json', 'clean.ts');
    writeFileSync(join(dir, 'scratch.ts'), 'var   x: any = 1\n');
    const untracked = lint();
    expect(untracked.status, untracked.stdout + untracked.stderr).toBe(0);
    git('add', 'scratch.ts');
    const tracked = lint();
    expect(tracked.status).not.toBe(0);
    expect(tracked.stdout + tracked.stderr).toContain('scratch.ts');
  });
});
