/**
 * The `cuda-ipc` transport: ranks on one node, each with a CUDA device. For each bucket the root
 * exports the device buffer holding it as an IPC handle (its device staging buffer, or a buffer
 * from its own pool that it fills from host memory), and writes the handle to the rendezvous
 * directory; every other participant opens the handle, copies the bytes device to device (into
 * its device staging buffer) or device to host (when it stages in host memory), closes the
 * handle and drops an ack; the root releases the buffer once every ack is in. Copies are chunked
 * (HOTWEIGHTS_IPC_COPY_CHUNK_MB) over streams (HOTWEIGHTS_IPC_COPY_STREAMS), off the event loop.
 *
 * Rendezvous: `options.rendezvous.dir`, a directory every rank on the node can see (the local
 * launcher and the worker agent make one). Each rank registers its pid there; a participant
 * waiting on a rank whose process has exited fails at once instead of at the deadline.
 */
import type {
  BroadcastRequest,
  DeviceBuffer,
  MemoryKind,
  Transport,
  TransportOptions,
} from '@hotweights/core';
import {
  checkBroadcastRequest,
  isDeviceBuffer,
  isErrorKind,
  readLaunchContext,
  TransportError,
} from '@hotweights/core';
import { type BucketDrop, DropExchange } from '@hotweights/shm';
import { CudaDevice } from './cuda-device.js';
import { IpcWindow } from './ipc-window.js';

/** What the root writes for each bucket (`hdr.<bucket>.<generation>`). */
interface Header {
  /** The IPC handle, hex (empty for an empty bucket). */
  readonly handle: string;
  readonly offset: number;
  readonly length: number;
  readonly rank: number;
  readonly pid: number;
}

function abortError(signal: AbortSignal): Error {
  const r = signal.reason as unknown;
  return r instanceof Error ? r : new TransportError(`cuda-ipc: broadcast aborted: ${String(r)}`);
}

export class CudaIpcTransport implements Transport {
  readonly name = 'cuda-ipc';
  readonly memoryKinds: readonly MemoryKind[] = ['device', 'host'];
  readonly rank: number;
  readonly worldSize: number;
  private readonly exchange: DropExchange | undefined;
  /** Device buffers for buckets a root sends from host memory, reused. */
  private readonly pool: { ptr: bigint; size: number }[] = [];
  private closed = false;

  private constructor(
    options: TransportOptions,
    readonly device: CudaDevice,
    readonly window: IpcWindow,
  ) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    const dir = options.rendezvous?.dir;
    if (dir)
      this.exchange = new DropExchange({
        dir,
        rank: this.rank,
        name: this.name,
        rootHoldsPayload: true, // the bytes are the root's device memory, gone when it exits
        errors: {
          make: (message, o) => new TransportError(message, o),
          isOwn: (err) => isErrorKind(err, 'TransportError'),
          aborted: abortError,
          peerExited: (r, pid) => `rank ${r} (pid ${pid}) exited during the broadcast`,
        },
      });
  }

  static async create(options: TransportOptions): Promise<CudaIpcTransport> {
    const { rank, worldSize } = options;
    if (!Number.isInteger(rank) || !Number.isInteger(worldSize) || rank < 0 || rank >= worldSize)
      throw new TransportError(`cuda-ipc: rank ${rank} is not in 0..${worldSize - 1}`);
    if (worldSize > 1 && !options.rendezvous?.dir)
      throw new TransportError(
        'cuda-ipc: a world of more than one rank needs rendezvous.dir (a directory every rank on this node can see)',
      );
    const launch = readLaunchContext();
    const device = CudaDevice.open(options.config, launch.launcher === 'none' ? rank : launch.localRank);
    const t = new CudaIpcTransport(options, device, new IpcWindow(options.config, options.metrics));
    if (t.exchange && worldSize > 1)
      await t.exchange.join({
        worldSize,
        timeoutS: options.config.transferTimeoutS,
        timeoutError: (m) => new TransportError(`cuda-ipc: ${m}`, { code: 'HW_TIMEOUT' }),
      });
    return t;
  }

  async broadcast(request: BroadcastRequest): Promise<void> {
    const { bucketId, root, ranks, data, signal } = request;
    if (this.closed) throw new TransportError('cuda-ipc: transport is closed');
    if (signal?.aborted) throw abortError(signal);
    checkBroadcastRequest(request, this.rank, this.worldSize);
    const device = request.device;
    if (device && (!isDeviceBuffer(device, 'cuda') || device.size !== data.byteLength))
      throw new TransportError(
        `cuda-ipc: bucket ${bucketId}: the device buffer must be CUDA memory of ${data.byteLength} B`,
        { code: 'HW_TRANSPORT_INVALID' },
      );
    if (ranks.length === 1) return;
    await (this.exchange as DropExchange).run(request, (drop) =>
      this.rank === root ? this.send(drop, data, device) : this.receive(drop, root, data, device),
    );
  }

  private async send(drop: BucketDrop, data: Uint8Array, device: DeviceBuffer | undefined): Promise<void> {
    await this.window.acquire(drop.signal);
    const t0 = performance.now();
    let pooled: { ptr: bigint; size: number } | undefined;
    let completed = false;
    try {
      let header: Header = { handle: '', offset: 0, length: 0, rank: this.rank, pid: process.pid };
      if (data.byteLength > 0) {
        let ptr: bigint;
        if (device) ptr = device.ptr;
        else {
          pooled = this.takePooled(data.byteLength, `bucket ${drop.name}`);
          ptr = pooled.ptr;
          await this.device.copyToDevice(ptr, data);
        }
        const h0 = performance.now();
        const exported = this.device.native.ipcExport(this.device.ordinal, ptr);
        this.window.observeHandleCreation((performance.now() - h0) / 1000);
        header = {
          ...header,
          handle: exported.handle.toString('hex'),
          offset: exported.offset,
          length: data.byteLength,
        };
      }
      await drop.publish(header);
      completed = true;
    } finally {
      if (pooled) this.pool.push(pooled);
      this.window.release(completed ? performance.now() - t0 : undefined);
    }
  }

  private async receive(
    drop: BucketDrop,
    root: number,
    data: Uint8Array,
    device: DeviceBuffer | undefined,
  ): Promise<void> {
    const { name: seg, signal } = drop;
    const h = await drop.readHeader<Header>();
    if (h.length !== data.byteLength)
      throw new TransportError(`cuda-ipc: bucket ${seg} holds ${h.length} B, expected ${data.byteLength} B`);
    if (h.length > 0) {
      let opened: bigint;
      try {
        opened = this.device.native.ipcOpen(this.device.ordinal, Buffer.from(h.handle, 'hex'));
      } catch (err) {
        throw new TransportError(
          `cuda-ipc: rank ${this.rank} cannot open the IPC handle of bucket ${seg} from rank ${root} (pid ${h.pid}): ${(err as Error).message}; are both ranks on the same node, with peer access between their devices?`,
          { cause: err, code: 'HW_TRANSPORT_HANDLE', details: { rank: this.rank, root } },
        );
      }
      try {
        if (signal.aborted) throw abortError(signal);
        const src = opened + BigInt(h.offset);
        if (device) await this.device.copyDevice(device.ptr, src, h.length);
        else await this.device.copyToHost(data, src);
      } finally {
        this.device.native.ipcClose(this.device.ordinal, opened);
      }
    }
    await drop.ack();
  }

  private takePooled(size: number, what: string): { ptr: bigint; size: number } {
    let best = -1;
    this.pool.forEach((b, i) => {
      if (b.size >= size && (best < 0 || b.size < (this.pool[best] as { size: number }).size)) best = i;
    });
    if (best >= 0) return this.pool.splice(best, 1)[0] as { ptr: bigint; size: number };
    return { ptr: this.device.alloc(size, `the root's copy of ${what}`), size };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.exchange?.close();
    for (const b of this.pool.splice(0)) this.device.free(b.ptr);
  }
}
