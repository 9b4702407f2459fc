/** Loads the native addon of the package at `root` with node-gyp-build (build/Release, else prebuilds/). */
import { createRequire } from 'node:module';

export function requireAddon(root: string): unknown {
  const require = createRequire(import.meta.url);
  return (require('node-gyp-build') as (dir: string) => unknown)(root);
}
