/**
 * Packs workspace packages as `npm pack` with their `prepack` would, for tests that install the
 * tarballs into a temporary application. The caller builds `dist` first (tsc). A native package
 * gets its prebuild from its own `prebuildify` script, run in a copy of the package: run in place
 * it would rewrite build/, from which other tests running at the same time load the addon.
 */

import { execFileSync, spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, realpathSync, symlinkSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';

export const REPO_ROOT = resolve(import.meta.dirname, '../../..');

/** Runs a command and returns its stdout; throws with its stderr when it fails. */
export function run(
  cmd: string,
  args: readonly string[],
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')} in ${cwd} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

interface Manifest {
  readonly name: string;
  readonly dependencies?: Record<string, string>;
}

/** The folders of the workspace packages `names` need at run time (dependencies, transitively). */
export function workspaceClosure(names: readonly string[]): string[] {
  const byName = new Map<string, { dir: string; manifest: Manifest }>();
  for (const d of readdirSync(join(REPO_ROOT, 'packages'))) {
    const file = join(REPO_ROOT, 'packages', d, 'package.json');
    if (!existsSync(file)) continue;
    const manifest = JSON.parse(readFileSync(file, 'utf8')) as Manifest;
    byName.set(manifest.name, { dir: join(REPO_ROOT, 'packages', d), manifest });
  }
  const out = new Set<string>();
  const visit = (name: string) => {
    const pkg = byName.get(name);
    if (!pkg || out.has(pkg.dir)) return;
    out.add(pkg.dir);
    for (const dep of Object.keys(pkg.manifest.dependencies ?? {})) visit(dep);
  };
  for (const name of names) visit(name);
  return [...out];
}

export interface PackOptions {
  /** Where the tarballs go. */
  readonly destination: string;
  /** A folder for the copies native packages are prebuilt in. */
  readonly scratch: string;
  /** Environment of `npm pack` (default: this process's). */
  readonly env?: NodeJS.ProcessEnv;
}

/** Packs each package folder; returns the tarballs' paths in the same order. */
export function packWorkspacePackages(dirs: readonly string[], options: PackOptions): string[] {
  mkdirSync(options.destination, { recursive: true });
  const env = options.env ?? process.env;
  return dirs.map((dir) => {
    let from = dir;
    if (existsSync(join(dir, 'binding.gyp'))) {
      from = join(options.scratch, basename(dir));
      cpSync(dir, from, { recursive: true, filter: (p) => !/[/\\](node_modules|build|prebuilds)$/.test(p) });
      // The workspace's prebuildify and node-addon-api (binding.gyp asks for it) are reachable
      // from the copy through PATH and NODE_PATH.
      run('npm', ['run', 'prebuildify'], from, {
        ...process.env,
        PATH: `${join(REPO_ROOT, 'node_modules/.bin')}:${process.env.PATH}`,
        NODE_PATH: join(REPO_ROOT, 'node_modules'),
      });
    }
    // Scripts off: prepack's steps (tsc, prebuildify) are done above.
    const out = run(
      'npm',
      ['pack', '--json', '--ignore-scripts', '--pack-destination', options.destination],
      from,
      env,
    );
    const [{ filename }] = JSON.parse(out) as [{ filename: string }];
    return join(options.destination, filename);
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
