/**
 * A newcomer's path: the command blocks of the README and the walkthroughs (the ones marked
 * `<!-- doc-test: … -->`, none needs a GPU), run as written and in order, with `hotweights` on
 * PATH as the README's quick start puts it, in a fresh environment: an empty HOME (so nothing
 * committed or published before), no HOTWEIGHTS_* variables, an empty working directory per doc. Each
 * block succeeds, or fails with exactly the line the doc shows.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { docBlocks } from './doc-blocks.js';
import { CLI_SOURCE, REPO_ROOT, SOURCE_NODE_ARGS } from './run-cli.js';

const DOCS = ['README.md', 'docs/WALKTHROUGHS.md', 'docs/TP_GROUPS.md'];

const root = mkdtempSync(join(tmpdir(), 'hw-docs-walk-'));
const staging = mkdtempSync(join('/dev/shm', 'hw-docs-walk-'));
// The demo's default directory: removed afterwards only when this test made it.
const demoDir = join(tmpdir(), 'hotweights-demo');
const demoExisted = existsSync(demoDir);
afterAll(() => {
  rmSync(root, { recursive: true, force: true });
  rmSync(staging, { recursive: true, force: true });
  if (!demoExisted) rmSync(demoDir, { recursive: true, force: true });
});

/**
 * `hotweights` as the quick start's PATH line provides it (node_modules/.bin/hotweights, the
 * CLI's bin), run from the TypeScript sources so the test needs no build; `exec` keeps it one
 * process, as the real bin is.
 */
function binDir(): string {
  const dir = join(root, 'bin');
  mkdirSync(dir);
  const args = [...SOURCE_NODE_ARGS, CLI_SOURCE].map((a) => `'${a}'`).join(' ');
  writeFileSync(join(dir, 'hotweights'), `#!/bin/sh\nexec '${process.execPath}' ${args} "$@"\n`);
  chmodSync(join(dir, 'hotweights'), 0o755);
  return dir;
}

function freshEnv(home: string, bin: string): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('HOTWEIGHTS_')) env[k] = v;
  // Only where staging goes differs from a user's machine: a directory this test removes.
  return { ...env, HOME: home, PATH: `${bin}:${process.env.PATH}`, HOTWEIGHTS_STAGING_DIR: staging };
}

/**
 * The block as written, less the lines the test does not run (it already runs inside an installed
 * checkout). A block that fails half way leaves no background job behind: the trap stops them.
 */
function runnable(script: string): string {
  const lines = script.split('\n').filter((line) => !/^npm ci\b/.test(line.trim()));
  return ["trap 'rc=$?; kill $(jobs -p) 2>/dev/null || true; wait; exit $rc' EXIT", ...lines].join('\n');
}

describe('the docs, as written', { timeout: 600_000 }, () => {
  it('the quick start puts the CLI on PATH as node_modules/.bin/hotweights', () => {
    const link = join(REPO_ROOT, 'node_modules/.bin/hotweights');
    expect(readlinkSync(link)).toBe('../@hotweights/cli/bin/hotweights.js');
  });

  it('every marked block of README.md and the walkthroughs runs, in order, in a fresh environment', () => {
    const bin = binDir();
    const home = join(root, 'home');
    mkdirSync(home);
    const env = freshEnv(home, bin);
    const blocks = docBlocks(REPO_ROOT, DOCS);
    expect(blocks.map((b) => `${b.file}#${b.name}`)).toContain('README.md#using-it');
    for (const block of blocks) {
      // The quick start runs where a clone is; each doc's blocks in a directory of their own
      // (one HOME: what one doc committed is on record for the next).
      const work = join(root, block.file.replace(/\W/g, '_'));
      mkdirSync(work, { recursive: true });
      const cwd = block.name === 'quick-start' ? REPO_ROOT : work;
      const r = spawnSync('bash', ['-e', '-c', runnable(block.script)], {
        cwd,
        env,
        encoding: 'utf8',
        timeout: 300_000,
      });
      const where = `${block.file}#${block.name}:\n${r.stdout}\n${r.stderr}`;
      if (block.error) {
        expect(r.status, where).not.toBe(0);
        expect(r.stderr, where).toMatch(block.error);
      } else {
        expect(r.status, where).toBe(0);
        expect(r.stderr, where).not.toMatch(/^hotweights: (error|unexpected)/m);
      }
    }
  });
});
