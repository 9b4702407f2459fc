/**
 * An application made the way a user makes one: workspace packages and out-of-workspace plugins
 * are built, `npm pack`ed and installed from their tarballs into a fresh directory (their other
 * dependencies come from the npm registry); its installed `hotweights` binary is then run there.
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { type CliResult, collect, REPO_ROOT } from './run-cli.js';

export const run = promisify(execFile);

/** The environment of a user's shell: none of the test runner's npm or rendezvous variables. */
export function userEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (/^(npm_|NODE_OPTIONS$|VITEST|MASTER_|HOTWEIGHTS_|RANK$|WORLD_SIZE$|OMPI_|PMIX_)/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...extra };
}

/** Workspace packages `start` needs, by walking dependencies inside the workspace. */
export function workspaceClosure(start: string): string[] {
  const dirs = new Map<string, string>();
  for (const d of readdirSync(join(REPO_ROOT, 'packages'))) {
    const file = join(REPO_ROOT, 'packages', d, 'package.json');
    if (existsSync(file)) dirs.set((JSON.parse(readFileSync(file, 'utf8')) as { name: string }).name, d);
  }
  const seen = new Set<string>();
  const visit = (name: string) => {
    const dir = dirs.get(name);
    if (!dir || seen.has(dir)) return;
    seen.add(dir);
    const pkg = JSON.parse(readFileSync(join(REPO_ROOT, 'packages', dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
    };
    for (const dep of Object.keys(pkg.dependencies ?? {})) visit(dep);
  };
  visit(start);
  return [...seen].map((d) => join(REPO_ROOT, 'packages', d));
}

/**
 * Packs the CLI's workspace closure plus `plugins` (package folders, built) into `work/tarballs`
 * and installs them all into `work/app`; returns the app's directory.
 */
export async function installPackedApp(work: string, plugins: readonly string[]): Promise<string> {
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  const sources = [...workspaceClosure('@hotweights/cli'), ...plugins];
  // Native packages ship prebuilt binaries in their tarball (prebuilds/ is not committed): make
  // them when a fresh clone has none, as a release would.
  for (const dir of sources) {
    if (existsSync(join(dir, 'binding.gyp')) && !existsSync(join(dir, 'prebuilds'))) {
      await run('npm', ['run', 'prebuildify', '--workspace', dir], { cwd: REPO_ROOT, maxBuffer: 16 << 20 });
    }
  }
  await run('npm', ['pack', '--silent', '--pack-destination', tarballs, ...sources], {
    cwd: work,
    env: userEnv(),
  });
  const packed = readdirSync(tarballs).map((f) => join(tarballs, f));
  if (packed.length !== sources.length)
    throw new Error(`packed ${packed.length} tarballs for ${sources.length} packages`);
  const app = join(work, 'app');
  mkdirSync(app);
  await run('npm', ['init', '-y'], { cwd: app, env: userEnv() });
  // Prebuilt binaries ship inside the tarballs, so no install script needs to run.
  await run('npm', ['install', '--no-audit', '--no-fund', '--ignore-scripts', ...packed], {
    cwd: app,
    env: userEnv(),
    maxBuffer: 16 << 20,
  });
  return app;
}

/** Runs the app's installed `hotweights` in the app's directory. */
export function installedCli(
  app: string,
  args: readonly string[],
  env: NodeJS.ProcessEnv = {},
): Promise<CliResult> {
  const child = spawn(join(app, 'node_modules', '.bin', 'hotweights'), args, { cwd: app, env: userEnv(env) });
  child.stdin.end();
  return collect(child);
}
