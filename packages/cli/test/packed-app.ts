/**
 * An application made the way a user makes one: workspace packages and out-of-workspace plugins
 * are built, `npm pack`ed and installed from their tarballs into a fresh directory (their other
 * dependencies come from the npm registry); its installed `hotweights` binary is then run there.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { packWorkspacePackages, workspaceClosure } from '@hotweights/release-tools/pack';
import { type CliResult, collect } from './run-cli.js';

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

/**
 * Packs the CLI's workspace closure plus `plugins` (package folders, built) into `work/tarballs`
 * and installs them all into `work/app`; returns the app's directory.
 */
export async function installPackedApp(work: string, plugins: readonly string[]): Promise<string> {
  const tarballs = join(work, 'tarballs');
  mkdirSync(tarballs);
  const sources = [...workspaceClosure(['@hotweights/cli']), ...plugins];
  // Native packages ship prebuilt binaries in their tarball (prebuilds/ is not committed): each
  // is made by the package's own prebuildify script, in a copy, as its prepack would.
  packWorkspacePackages(sources, { destination: tarballs, scratch: join(work, 'prebuild'), env: userEnv() });
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
