/**
 * The `local` transport: N ranks as processes on one host. The root writes each bucket once into
 * a shared-memory file in the rendezvous directory; every other participant reads it from there
 * into its own buffer (its staging segment) and drops an ack file; the root recycles the file
 * once every ack is in. Files are named by bucket id and a per-bucket generation (participants
 * issue broadcasts in the same order), so several broadcasts can be in flight at once.
 *
 * Rendezvous: `options.rendezvous.dir`, a directory every rank can see (the launcher makes one
 * under the staging dir). Each rank registers `rank.<r>.pid` there; a participant that waits on a
 * rank whose process has exited fails at once instead of waiting for the timeout.
 */
import { constants, existsSync } from 'node:fs';
import { open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BroadcastRequest, Transport, TransportOptions, TransportProvider } from '@hotweights/core';
import { BUILTIN_PRIORITIES, checkBroadcastRequest, isErrorKind, TransportError } from '@hotweights/core';
import { DirectoryWaiter, joinRendezvous, processAlive, sharedLocationOf } from '@hotweights/shm';
import { abortReason } from './abort-reason.js';

interface Pending {
  /** Rank -> the file whose appearance shows that rank did its part; removed once seen. */
  readonly awaits: Map<number, string>;
  readonly reject: (err: Error) => void;
}

export class LocalTransport implements Transport {
  readonly name = 'local';
  readonly rank: number;
  readonly worldSize: number;
  private readonly dir: string | undefined;
  private readonly generations = new Map<number, number>();
  private readonly pending = new Set<Pending>();
  private readonly spares: string[] = [];
  private spareCounter = 0;
  private waiter: DirectoryWaiter | undefined;
  private peers = new Map<number, number>();
  private closed = false;

  private constructor(options: TransportOptions) {
    this.rank = options.rank;
    this.worldSize = options.worldSize;
    this.dir = options.rendezvous?.dir;
    if (this.dir)
      this.waiter = new DirectoryWaiter(this.dir, () => {
        this.checkPeers();
      });
  }

  /** Registers this rank in the rendezvous dir and waits (up to the transfer timeout) for the others. */
  static async create(options: TransportOptions): Promise<LocalTransport> {
    const { rank, worldSize } = options;
    if (!Number.isInteger(rank) || !Number.isInteger(worldSize) || rank < 0 || rank >= worldSize) {
      throw new TransportError(`local: rank ${rank} is not in 0..${worldSize - 1}`);
    }
    if (worldSize > 1 && !options.rendezvous?.dir) {
      throw new TransportError(
        'local: a world of more than one rank needs rendezvous.dir (a directory every rank on this host can see)',
      );
    }
    const t = new LocalTransport(options);
    if (t.dir && worldSize > 1 && t.waiter) {
      t.peers = await joinRendezvous(t.dir, t.waiter, {
        rank,
        worldSize,
        timeoutS: options.config.transferTimeoutS,
        timeoutError: (message) => new TransportError(`local: ${message}`, { code: 'HW_TIMEOUT' }),
      });
    }
    return t;
  }

  private checkPeers(): void {
    for (const p of [...this.pending]) {
      for (const [r, name] of p.awaits) {
        const pid = this.peers.get(r);
        // A peer that did its part and then exited is fine: look for its file once more.
        if (pid !== undefined && !processAlive(pid) && !existsSync(join(this.dir as string, name))) {
          p.reject(new TransportError(`local: rank ${r} (pid ${pid}) exited`, { details: { rank: r } }));
        }
      }
    }
  }

  async broadcast(request: BroadcastRequest): Promise<void> {
    const { bucketId, root, ranks, data, signal } = request;
    if (this.closed) throw new TransportError('local: transport is closed');
    if (signal?.aborted) throw abortReason(signal);
    checkBroadcastRequest(request, this.rank, this.worldSize);
    if (ranks.length === 1) return;
    const dir = this.dir as string;
    const gen = this.generations.get(bucketId) ?? 0;
    this.generations.set(bucketId, gen + 1);
    const seg = `${bucketId}.${gen}`;
    // Rejects as soon as the signal fires or a participant's process dies.
    const ctrl = new AbortController();
    const onAbort = () => ctrl.abort(signal?.reason);
    signal?.addEventListener('abort', onAbort, { once: true });
    const awaits = new Map<number, string>();
    if (this.rank === root) for (const r of ranks) if (r !== root) awaits.set(r, `ack.${seg}.${r}`);
    if (this.rank !== root) awaits.set(root, `hdr.${seg}`);
    const pending: Pending = { awaits, reject: (err) => ctrl.abort(err) };
    this.pending.add(pending);
    try {
      if (this.rank === root) await this.send(dir, seg, awaits, data, ctrl.signal);
      else await this.receive(dir, seg, awaits, data, ctrl.signal);
    } catch (err) {
      if (ctrl.signal.aborted) throw abortReason(ctrl.signal);
      throw isErrorKind(err, 'TransportError')
        ? err
        : new TransportError(`local: bucket ${bucketId}: ${(err as Error).message}`, { cause: err });
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
    signal: AbortSignal,
  ): Promise<void> {
    let location = data.byteLength > 0 ? sharedLocationOf(data) : undefined;
    let own: string | undefined;
    if (!location) {
      // Overwriting a recycled file is several times faster than filling fresh tmpfs pages.
      own = this.spares.pop() ?? `data.${this.rank}.${this.spareCounter++}`;
      const fh = await open(join(dir, own), constants.O_RDWR | constants.O_CREAT);
      try {
        await fh.truncate(data.byteLength);
        let done = 0;
        while (done < data.byteLength) {
          if (signal.aborted) throw abortReason(signal);
          // 4 MiB writes: several times faster than huge ones (measured on this machine kind).
          const { bytesWritten } = await fh.write(
            data,
            done,
            Math.min(data.byteLength - done, 4 << 20),
            done,
          );
          done += bytesWritten;
        }
      } finally {
        await fh.close();
      }
      location = { path: join(dir, own), offset: 0 };
    }
    const hdr = join(dir, `hdr.${seg}`);
    await writeFile(`${hdr}.tmp`, JSON.stringify({ ...location, length: data.byteLength }));
    await rename(`${hdr}.tmp`, hdr);
    const acks = [...awaits];
    try {
      await Promise.all(
        acks.map(async ([r, name]) => {
          await this.waiter?.wait(name, signal);
          awaits.delete(r);
        }),
      );
    } finally {
      await rm(hdr, { force: true });
      await Promise.all(acks.map(([, name]) => rm(join(dir, name), { force: true })));
      if (own) this.spares.push(own);
    }
  }

  private async receive(
    dir: string,
    seg: string,
    awaits: Map<number, string>,
    data: Uint8Array,
    signal: AbortSignal,
  ): Promise<void> {
    await this.waiter?.wait(`hdr.${seg}`, signal);
    awaits.clear();
    const hdr = JSON.parse(await readFile(join(dir, `hdr.${seg}`), 'utf8')) as {
      path: string;
      offset: number;
      length: number;
    };
    if (hdr.length !== data.byteLength) {
      throw new TransportError(`local: bucket ${seg} holds ${hdr.length} bytes, expected ${data.byteLength}`);
    }
    if (data.byteLength > 0) {
      const fh = await open(hdr.path, 'r');
      try {
        let done = 0;
        while (done < data.byteLength) {
          if (signal.aborted) throw abortReason(signal);
          const { bytesRead } = await fh.read(
            data,
            done,
            Math.min(data.byteLength - done, 1 << 30),
            hdr.offset + done,
          );
          if (bytesRead === 0) throw new TransportError(`local: ${hdr.path} ended after ${done} bytes`);
          done += bytesRead;
        }
      } finally {
        await fh.close();
      }
    }
    await writeFile(join(dir, `ack.${seg}.${this.rank}`), '');
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const p of [...this.pending]) p.reject(new TransportError('local: transport closed'));
    if (this.dir) {
      const dir = this.dir;
      await Promise.all(this.spares.splice(0).map((s) => rm(join(dir, s), { force: true })));
    }
  }
}

export const localTransportProvider: TransportProvider = {
  name: 'local',
  priority: BUILTIN_PRIORITIES.local ?? 10,
  description: 'processes on one host, through shared-memory files (always available)',
  async probe() {
    return { available: true, detail: 'one host, shared memory' };
  },
  create: (options) => LocalTransport.create(options),
};
