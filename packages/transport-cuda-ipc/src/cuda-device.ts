/**
 * One CUDA device of this process, opened through the driver library the config names
 * (HOTWEIGHTS_CUDA_LIBRARY: the real `libcuda.so.1`, or in tests the stand-in, a test double of
 * the driver API over host memory). Owns allocation, the copies (chunked by
 * HOTWEIGHTS_IPC_COPY_CHUNK_MB over HOTWEIGHTS_IPC_COPY_STREAMS streams) and the DeviceBuffer
 * views that the Replicator and adapters use.
 */
import type { DeviceBuffer, HotweightsConfig } from '@hotweights/core';
import { TransportError } from '@hotweights/core';
import { CUDA_ERROR_OUT_OF_MEMORY, cudaCodeOf, loadNative, type NativeCuda } from './native.js';

/** Why the CUDA driver cannot be used here, or the loaded driver. */
export function openDriver(
  config: HotweightsConfig,
): { native: NativeCuda; devices: number; driverVersion: number } | { reason: string } {
  const { native, error } = loadNative();
  if (!native) return { reason: error ?? 'the native addon did not load' };
  let r: ReturnType<NativeCuda['load']>;
  try {
    r = native.load(config.cudaLibrary);
  } catch (err) {
    return { reason: `opening ${config.cudaLibrary} failed: ${(err as Error).message}` };
  }
  if (!r.ok) return { reason: r.reason ?? `${config.cudaLibrary} is unusable` };
  return { native, devices: r.devices, driverVersion: r.driverVersion };
}

/** Thrown when the device has no room; the message says what was being allocated. */
export class DeviceMemoryError extends TransportError {}

export class CudaDevice {
  readonly name: string;
  readonly chunkBytes: number;
  readonly streams: number;

  private constructor(
    readonly native: NativeCuda,
    readonly ordinal: number,
    config: HotweightsConfig,
  ) {
    this.name = native.device(ordinal).name;
    this.chunkBytes = Math.max(1, Math.round(config.ipcCopyChunkMb * 2 ** 20));
    this.streams = config.ipcCopyStreams;
  }

  /** Opens the device for this rank: HOTWEIGHTS_CUDA_DEVICE, else the local rank modulo the count. */
  static open(config: HotweightsConfig, localRank: number): CudaDevice {
    const d = openDriver(config);
    if ('reason' in d) throw new TransportError(`cuda-ipc: ${d.reason}`, { code: 'HW_TRANSPORT_INVALID' });
    const ordinal = config.cudaDevice ?? localRank % d.devices;
    if (ordinal >= d.devices)
      throw new TransportError(
        `cuda-ipc: HOTWEIGHTS_CUDA_DEVICE=${ordinal}, but the driver has ${d.devices} device(s) (0..${d.devices - 1})`,
        { code: 'HW_TRANSPORT_INVALID' },
      );
    return new CudaDevice(d.native, ordinal, config);
  }

  /** Allocates `size` bytes; an out-of-memory device fails with a DeviceMemoryError naming `what`. */
  alloc(size: number, what: string): bigint {
    try {
      return this.native.alloc(this.ordinal, Math.max(size, 1));
    } catch (err) {
      if (cudaCodeOf(err) === CUDA_ERROR_OUT_OF_MEMORY) {
        const mib = (size / 2 ** 20).toFixed(1);
        throw new DeviceMemoryError(
          `cuda-ipc: device ${this.ordinal} is out of memory allocating ${mib} MiB for ${what}: lower HOTWEIGHTS_BUCKET_MB (smaller buckets) or HOTWEIGHTS_INFLIGHT_BUCKETS (fewer at once)`,
          { cause: err, details: { device: this.ordinal, bytes: size } },
        );
      }
      throw new TransportError(`cuda-ipc: allocating ${size} B for ${what}: ${(err as Error).message}`, {
        cause: err,
      });
    }
  }

  free(ptr: bigint): void {
    this.native.free(this.ordinal, ptr);
  }

  /** A DeviceBuffer view of `size` bytes at `ptr` (memory this process allocated or opened). */
  buffer(ptr: bigint, size: number): DeviceBuffer {
    const dev = this;
    const range = (offset: number, n: number) => {
      if (!Number.isSafeInteger(offset) || offset < 0 || offset + n > size)
        throw new RangeError(`bytes ${offset}..${offset + n} are outside the ${size} B device buffer`);
      return ptr + BigInt(offset);
    };
    return {
      kind: 'device',
      api: 'cuda',
      device: this.ordinal,
      ptr,
      size,
      async copyToHost(offset, dst) {
        await dev.native.copyToHost(
          dev.ordinal,
          dst,
          range(offset, dst.byteLength),
          dev.chunkBytes,
          dev.streams,
        );
      },
      async copyFromHost(offset, src) {
        await dev.native.copyToDevice(
          dev.ordinal,
          range(offset, src.byteLength),
          src,
          dev.chunkBytes,
          dev.streams,
        );
      },
    };
  }

  /** Device-to-device copy (chunked over streams); resolves with the device-timed milliseconds. */
  copyDevice(dst: bigint, src: bigint, bytes: number): Promise<number> {
    return this.native.copyDevice(this.ordinal, dst, src, bytes, this.chunkBytes, this.streams);
  }

  copyToDevice(dst: bigint, src: Uint8Array): Promise<number> {
    return this.native.copyToDevice(this.ordinal, dst, src, this.chunkBytes, this.streams);
  }

  copyToHost(dst: Uint8Array, src: bigint): Promise<number> {
    return this.native.copyToHost(this.ordinal, dst, src, this.chunkBytes, this.streams);
  }
}
