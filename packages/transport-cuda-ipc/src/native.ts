/**
 * The native addon's typed binding, loaded (a local `build/Release`, or a prebuild from
 * `prebuilds/`) through @hotweights/native-loader on first use. Loading never touches CUDA: the
 * addon opens the driver library with dlopen only when `load` is called.
 */
import { fileURLToPath } from 'node:url';
import { lazyAddon } from '@hotweights/native-loader';

export interface DriverLoad {
  readonly ok: boolean;
  readonly reason?: string;
  readonly driverVersion: number;
  readonly devices: number;
}

export interface NativeCuda {
  load(library: string): DriverLoad;
  device(ordinal: number): { name: string; free: number; total: number };
  alloc(ordinal: number, size: number): bigint;
  free(ordinal: number, ptr: bigint): void;
  /** The IPC handle of the allocation holding `ptr`, and where `ptr` sits in it. */
  ipcExport(ordinal: number, ptr: bigint): { handle: Buffer; offset: number };
  ipcOpen(ordinal: number, handle: Buffer): bigint;
  ipcClose(ordinal: number, ptr: bigint): void;
  hostRegister(ordinal: number, bytes: Uint8Array): void;
  hostUnregister(ordinal: number, bytes: Uint8Array): void;
  /** Chunked copies over `streams` streams; each resolves with the device-timed milliseconds. */
  copyToDevice(
    ordinal: number,
    dst: bigint,
    src: Uint8Array,
    chunk: number,
    streams: number,
  ): Promise<number>;
  copyToHost(ordinal: number, dst: Uint8Array, src: bigint, chunk: number, streams: number): Promise<number>;
  copyDevice(
    ordinal: number,
    dst: bigint,
    src: bigint,
    bytes: number,
    chunk: number,
    streams: number,
  ): Promise<number>;
}

/** The package root: src/ and dist/ both sit one level below it. */
export const PACKAGE_ROOT = fileURLToPath(new URL('..', import.meta.url));

const addon = lazyAddon<NativeCuda>({
  packageName: '@hotweights/transport-cuda-ipc',
  root: PACKAGE_ROOT,
  requires: [
    'load',
    'device',
    'alloc',
    'free',
    'ipcExport',
    'ipcOpen',
    'ipcClose',
    'hostRegister',
    'hostUnregister',
    'copyToDevice',
    'copyToHost',
    'copyDevice',
  ],
});

/** The addon and the file it came from, or the reason it could not be loaded. */
export function loadNative(): { native?: NativeCuda; path?: string; error?: string } {
  const r = addon.tryLoad();
  return 'binding' in r ? { native: r.binding, path: r.path } : { error: r.message };
}

/** The CUDA result code a driver error carries (2: out of memory, 400: invalid handle). */
export function cudaCodeOf(err: unknown): number | undefined {
  const code = (err as { cudaCode?: unknown } | null)?.cudaCode;
  return typeof code === 'number' ? code : undefined;
}

export const CUDA_ERROR_OUT_OF_MEMORY = 2;
