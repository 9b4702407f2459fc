/**
 * Memory kinds. A staged bucket and a broadcast buffer live in host memory (a Uint8Array, often a
 * shared-memory segment) or in device memory (a GPU buffer, reachable from JavaScript only through
 * the package that allocated it). Core stays pure JavaScript: a device buffer is described here as
 * data plus the two copies every caller needs (to and from host memory); the native work lives in
 * the device package (e.g. @hotweights/transport-cuda-ipc).
 *
 * The guarantee is the same for both kinds: every landed byte is hashed before anything commits.
 * For device memory the Replicator copies the landed bucket back to host memory (pinned when the
 * device package can) in chunks and hashes that copy with the same hash workers as host buckets.
 */

/** Where a buffer lives. */
export type MemoryKind = 'host' | 'device';

/** A buffer in device memory, owned by the device package that made it. */
export interface DeviceBuffer {
  readonly kind: 'device';
  /** Device API that owns the buffer (`cuda`). Transports check it before using `ptr`. */
  readonly api: string;
  /** Device ordinal in that API. */
  readonly device: number;
  /** Device address (the API's pointer type, e.g. CUdeviceptr), for native code of the same API. */
  readonly ptr: bigint;
  /** Bytes usable from `ptr`. */
  readonly size: number;
  /** Copies `dst.byteLength` bytes from `offset` of the buffer into host memory `dst`. */
  copyToHost(offset: number, dst: Uint8Array): Promise<void>;
  /** Copies host memory `src` into the buffer at `offset`. */
  copyFromHost(offset: number, src: Uint8Array): Promise<void>;
}

/** A buffer in host memory. */
export interface HostBuffer {
  readonly kind: 'host';
  readonly bytes: Uint8Array;
}

/** Memory of either kind (what code that handles both takes). */
export type BufferRef = HostBuffer | DeviceBuffer;

/** True for a device buffer of `api` (any api when omitted). */
export function isDeviceBuffer(v: unknown, api?: string): v is DeviceBuffer {
  const d = v as DeviceBuffer | null;
  return (
    d !== null &&
    typeof d === 'object' &&
    d.kind === 'device' &&
    typeof d.ptr === 'bigint' &&
    Number.isSafeInteger(d.size) &&
    (api === undefined || d.api === api)
  );
}
