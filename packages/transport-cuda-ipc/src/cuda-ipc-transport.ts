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
import { existsSync } from 'node:fs';
import { readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
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
import { DirectoryWaiter, joinRendezvous, processAlive } from '@hotweights/shm';
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

interface Pending {
  /** Rank -> the file whose appearance shows that rank did its part. */
  readonly awaits: Map<number, string>;
  readonly reject: (err: Error) => void;
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
  private readonly dir: string | undefined;
  private readonly waiter: DirectoryWaiter | undefined;
  private readonly generations = new Map<number, number>();
  private readonly pending = new Set<Pending>();
  /** Device buffers for buckets a root sends from host memory, reused. */
  private readonly pool: { ptr: bigint; size: number }[] = [];
  private peers = new Map<number, number>();
  private closed = false;

  private constructor(
    options: TransportOptions,
    readonly device: CudaDevice,
    readonly window: IpcWindow,
  ) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.dir = options.rendezvous?.dir;
    if (this.dir) this.waiter = new DirectoryWaiter(this.dir, () => this.checkPeers());
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
    if (t.dir && t.waiter && worldSize > 1)
      t.peers = await joinRendezvous(t.dir, t.waiter, {
        rank,
        worldSize,
        timeoutS: options.config.transferTimeoutS,
        timeoutError: (m) => new TransportError(`cuda-ipc: ${m}`, { code: 'HW_TIMEOUT' }),
      });
    return t;
  }

  private checkPeers(): void {
    for (const p of [...this.pending])
      for (const [r, name] of p.awaits) {
        const pid = this.peers.get(r);
        // A peer that did its part and then exited is fine: look for its file once more.
        if (pid !== undefined && !processAlive(pid) && !existsSync(join(this.dir as string, name)))
          p.reject(
            new TransportError(`cuda-ipc: rank ${r} (pid ${pid}) exited during the broadcast`, {
              details: { rank: r },
            }),
          );
      }
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
    const dir = this.dir as string;
    const gen = this.generations.get(bucketId) ?? 0;
    this.generations.set(bucketId, gen + 1);
    const seg = `${bucketId}.${gen}`;
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const awaits = new Map<number, string>();
    if (this.rank === root) {
      for (const r of ranks) if (r !== root) awaits.set(r, `ack.${seg}.${r}`);
    } else awaits.set(root, `hdr.${seg}`);
    const pending: Pending = { awaits, reject: (err) => ctrl.abort(err) };
    this.pending.add(pending);
    try {
      if (this.rank === root) await this.send(dir, seg, awaits, data, device, ctrl.signal);
      else await this.receive(dir, seg, root, data, device, ctrl.signal);
    } catch (err) {
      if (ctrl.signal.aborted) throw abortError(ctrl.signal);
      throw isErrorKind(err, 'TransportError')
        ? err
        : new TransportError(`cuda-ipc: bucket ${bucketId}: ${(err as Error).message}`, { cause: err });
    } finally {
      signal?.removeEventListener('abort', onAbort);
      this.pending.delete(pending);
    }
  }

  private async send(
    dir: string,
    seg: string,
    awaits: Map<number, string>,
    data: Uint8Array,
    device: DeviceBuffer | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    await this.window.acquire(signal);
    const t0 = performance.now();
    let pooled: { ptr: bigint; size: number } | undefined;
    let completed = false;
    const hdr = join(dir, `hdr.${seg}`);
    const acks = [...awaits.values()];
    try {
      let header: Header = { handle: '', offset: 0, length: 0, rank: this.rank, pid: process.pid };
      if (data.byteLength > 0) {
        let ptr: bigint;
        if (device) ptr = device.ptr;
        else {
          pooled = this.takePooled(data.byteLength, `bucket ${seg}`);
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
      if (signal.aborted) throw abortError(signal);
      await writeFile(`${hdr}.tmp`, JSON.stringify(header));
      await rename(`${hdr}.tmp`, hdr);
      await Promise.all(
        [...awaits].map(async ([r, name]) => {
          await this.waiter?.wait(name, signal);
          awaits.delete(r);
        }),
      );
      completed = true;
    } finally {
      await rm(hdr, { force: true });
      await Promise.all(acks.map((name) => rm(join(dir, name), { force: true })));
      if (pooled) this.pool.push(pooled);
      this.window.release(completed ? performance.now() - t0 : undefined);
    }
  }

  private async receive(
    dir: string,
    seg: string,
    root: number,
    data: Uint8Array,
    device: DeviceBuffer | undefined,
    signal: AbortSignal,
  ): Promise<void> {
    await this.waiter?.wait(`hdr.${seg}`, signal);
    const h = JSON.parse(await readFile(join(dir, `hdr.${seg}`), 'utf8')) as Header;
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
    await writeFile(join(dir, `ack.${seg}.${this.rank}`), '');
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
    for (const p of [...this.pending]) p.reject(new TransportError('cuda-ipc: transport closed'));
    for (const b of this.pool.splice(0)) this.device.free(b.ptr);
  }
}
