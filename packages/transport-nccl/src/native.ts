/**
 * The native addon's typed binding, loaded (a local `build/Release`, or a prebuild from
 * `prebuilds/`) through @hotweights/native-loader on first use. Loading never touches NCCL or
 * CUDA: the addon opens them with dlopen only when asked, so a load failure here means the addon
 * itself is missing or built for another platform, and the reason names the places searched.
 */
import { fileURLToPath } from 'node:url';
import { lazyAddon } from '@hotweights/native-loader';

export interface LibraryProbe {
  readonly ok: boolean;
  readonly reason?: string;
  /** NCCL's version, e.g. `2.19.3`. */
  readonly nccl?: string;
  /** The CUDA runtime's version, e.g. `12.4`. */
  readonly cudaRuntime?: string;
  /** Which of the CUDA runtime alternatives opened. */
  readonly cudart?: string;
  readonly devices: number;
  /** ncclCommSplit is there (NCCL >= 2.18): sub-communicators are split from the world's. */
  readonly split: boolean;
}

export interface Pending {
  readonly id: number;
  readonly done: Promise<void>;
}

export interface NativeNccl {
  probe(ncclLibrary: string, cudartLibrary: string): LibraryProbe;
  uniqueId(ncclLibrary: string, cudartLibrary: string): Uint8Array;
  open(ncclLibrary: string, cudartLibrary: string, device: number): { engine: number; done: Promise<void> };
  initComm(engine: number, uniqueId: Uint8Array, nranks: number, rank: number): Pending;
  /** Resolves true on members, false on ranks that passed NCCL_SPLIT_NOCOLOR (-1). */
  split(engine: number, parent: number, color: number, key: number): { id: number; done: Promise<boolean> };
  bcast(
    engine: number,
    comm: number,
    root: number,
    rank: number,
    data: Uint8Array,
    chunkBytes: number,
  ): Promise<void>;
  abort(engine: number, reason: string): void;
  close(engine: number): Promise<void>;
}

/** The package root: src/ and dist/ both sit one level below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

const addon = lazyAddon<NativeNccl>({
  packageName: '@hotweights/transport-nccl',
  root: PACKAGE_ROOT,
  requires: ['probe', 'uniqueId', 'open', 'initComm', 'split', 'bcast', 'abort', 'close'],
});

/** The addon and the file it came from, or the reason it could not be loaded. */
export function loadNative(): { native?: NativeNccl; path?: string; error?: string } {
  const r = addon.tryLoad();
  return 'binding' in r ? { native: r.binding, path: r.path } : { error: r.message };
}
