/**
 * For pack-and-install tests: `npm pack` workspace packages and everything of ours they depend
 * on, the way users get them. Native packages are packed with prebuilds made in a copy (so the
 * build folders other tests load addons from are never rewritten under them). Used by the
 * transport packages' test/pack.test.ts.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

interface Pkg {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
}

function readPkg(dir: string): Pkg {
  return JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as Pkg;
}

/** Runs a command, returns its stdout, throws with its stderr when it fails. */
export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  const r = spawnSync(cmd, args, {
    cwd,
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 180_000,
  });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Workspace folders (under packages/) of `names` and of the @hotweights/* packages they depend on. */
export function workspaceClosure(names: readonly string[]): string[] {
  const byName = new Map<string, string>();
  for (const dir of readdirSync(join(REPO_ROOT, 'packages'))) {
    if (existsSync(join(REPO_ROOT, 'packages', dir, 'package.json'))) {
      byName.set(readPkg(join(REPO_ROOT, 'packages', dir)).name, dir);
    }
  }
  const out = new Set<string>();
  const visit = (name: string) => {
    const dir = byName.get(name);
    if (!dir || out.has(dir)) return;
    out.add(dir);
    for (const dep of Object.keys(readPkg(join(REPO_ROOT, 'packages', dir)).dependencies ?? {})) visit(dep);
  };
  for (const name of names) visit(name);
  return [...out];
}

/** Builds and packs `names` and their workspace dependencies into `dest`; returns the tarballs. */
export function packWorkspace(names: readonly string[], dest: string): string[] {
  const dirs = workspaceClosure(names);
  run('npx', ['tsc', '-b', ...dirs.map((d) => `packages/${d}`)], REPO_ROOT);
  return dirs.map((dir) => {
    let cwd = join(REPO_ROOT, 'packages', dir);
    if (existsSync(join(cwd, 'binding.gyp'))) {
      const copy = join(dest, 'src', dir);
      cpSync(cwd, copy, { recursive: true, filter: (p) => !/[/\\](node_modules|build|prebuilds)$/.test(p) });
      run(process.execPath, [join(REPO_ROOT, 'node_modules/prebuildify/bin.js'), '--napi', '--strip'], copy, {
        npm_config_nodedir: process.env.npm_config_nodedir ?? '/usr',
        NODE_PATH: join(REPO_ROOT, 'node_modules'), // node-addon-api for binding.gyp
      });
      cwd = copy;
    }
    // The same as `npm pack` (whose prepack makes the prebuild), done in the steps above.
    run('npm', ['pack', '--ignore-scripts', '--pack-destination', dest], cwd);
    const { name, version } = readPkg(cwd);
    return join(dest, `${name.replace(/^@/, '').replace('/', '-')}-${version}.tgz`);
  });
}

/** A folder holding only links to `tools` (e.g. node, npm, npx, sh): a PATH with no compiler. */
export function toolBin(dir: string, tools: readonly string[]): string {
  mkdirSync(dir);
  for (const tool of tools) {
    const found = execFileSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).trim();
    symlinkSync(realpathSync(found), join(dir, tool));
  }
  return dir;
}
