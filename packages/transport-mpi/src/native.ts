/**
 * The native addon's typed binding, loaded (a local `build/Release`, or a prebuild from
 * `prebuilds/`) through @hotweights/native-loader on first use. Loading never touches MPI: the
 * addon opens libmpi with dlopen only when asked, so a load failure here means the addon itself is
 * missing or built for another platform, and the reason names the places searched and the fix.
 */
import { fileURLToPath } from 'node:url';
import { lazyAddon } from '@hotweights/native-loader';

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

const addon = lazyAddon<NativeMpi>({
  packageName: '@hotweights/transport-mpi',
  root: PACKAGE_ROOT,
  requires: [
    'probe',
    'init',
    'createComm',
    'freeComm',
    'bcast',
    'barrier',
    'finalize',
    'abort',
    'status',
    'abi',
  ],
});

/** The addon and the file it came from, or the reason it could not be loaded. */
export function loadNative(): { native?: NativeMpi; path?: string; error?: string } {
  const r = addon.tryLoad();
  return 'binding' in r ? { native: r.binding, path: r.path } : { error: r.message };
}
