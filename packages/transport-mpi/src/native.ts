/**
 * Loads the native addon (a prebuild from `prebuilds/`, or a local `build/Release`) with
 * node-gyp-build. Loading never touches MPI: the addon opens libmpi only when asked, so a load
 * failure here means the addon itself is missing or built for another platform.
 */
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

export interface LibraryProbe {
  readonly ok: boolean;
  readonly reason?: string;
  readonly version?: string;
}

export interface NativeMpi {
  probe(library: string): LibraryProbe;
  init(library: string): { rank: number; size: number; version: string };
  createComm(worldRanks: readonly number[]): { id: number; done: Promise<void> };
  freeComm(id: number): Promise<void>;
  bcast(commId: number, root: number, data: Uint8Array, chunkBytes: number): Promise<void>;
  barrier(commId: number): Promise<void>;
  finalize(): void;
  abort(code: number): void;
  status(): { initialized: boolean; finalized: boolean; pending: number };
  abi(): Record<string, number>;
}

/** The package root: src/ and dist/ both sit one level below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

interface NodeGypBuild {
  (dir: string): unknown;
  resolve(dir: string): string;
}

let cached: { native?: NativeMpi; path?: string; error?: string } | undefined;

/** The addon and the file it came from, or the reason it could not be loaded. */
export function loadNative(): { native?: NativeMpi; path?: string; error?: string } {
  if (cached) return cached;
  try {
    const require = createRequire(import.meta.url);
    const nodeGypBuild = require('node-gyp-build') as NodeGypBuild;
    const path = nodeGypBuild.resolve(PACKAGE_ROOT);
    cached = { native: require(path) as NativeMpi, path };
  } catch (err) {
    cached = { error: `native addon did not load: ${(err as Error).message.split('\n')[0]}` };
  }
  return cached;
}
