/**
 * A broadcast transport over TCP. Rank 0 listens at the rendezvous and every other rank connects
 * to it: a star. Rank 0 sends its buckets straight to each consumer and relays frames between
 * other ranks (a bucket whose root is rank 2 goes 2 -> 0 -> consumers). Each consumer acknowledges
 * a whole bucket, so a broadcast resolves on the root only when every consumer holds the bytes.
 *
 * What it deliberately does NOT do (core's Replicator does it for every transport): windowing,
 * retries, hashing, metrics, progress. It only honours the AbortSignal it is given.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BroadcastRequest,
  checkBroadcastRequest,
  type Transport,
  TransportError,
} from '@hotweights/core';
import { encodeHeader, type FrameHeader, FrameReader, Kind, type Sink } from './frames.js';
import type { Rendezvous } from './rendezvous.js';

const HUB = 0;
/** How long rank 0 waits at close() for the others to hang up first (they may still relay through it). */
const HUB_LINGER_MS = 5000;

interface Pending {
  readonly role: 'send' | 'receive';
  /** receive: where the bytes land. */
  readonly data: Uint8Array;
  /** send: consumers that have not acknowledged yet. */
  readonly waiting: Set<number>;
  /** receive: set once the payload streams straight into `data`. */
  sink?: Sink;
  resolve(): void;
  reject(err: Error): void;
}

function keyOf(root: number, bucketId: number, seq: number): string {
  return `${root}:${bucketId}:${seq}`;
}

function socketClosed(sock: Socket, ms: number): Promise<void> {
  if (sock.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    sock.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

export class TcpTransport implements Transport {
  readonly name = 'tcp';
  readonly #pending = new Map<string, Pending>();
  /** Frames (data or abort) that arrived before this rank called broadcast for them. */
  readonly #early = new Map<string, { header: FrameHeader; payload: Uint8Array }>();
  /** Per (root, bucket id): how many broadcasts this rank has issued. Keys reused ids apart. */
  readonly #issued = new Map<string, number>();
  /** Rank 0: a socket per other rank. Others: {0: socket to rank 0}. */
  readonly #peers = new Map<number, Socket>();
  readonly #lost = new Set<number>();
  #server: Server | undefined;
  #broken: string | undefined;
  #closing: Promise<void> | undefined;

  private constructor(
    readonly rank: number,
    readonly worldSize: number,
  ) {}

  /** Connects the job. Every rank calls it; it resolves once all `worldSize` ranks are connected. */
  static async open(
    rank: number,
    worldSize: number,
    rendezvous: Rendezvous | undefined,
    timeoutMs: number,
  ): Promise<TcpTransport> {
    const t = new TcpTransport(rank, worldSize);
    if (worldSize === 1) return t;
    if (!rendezvous)
      throw new TransportError('tcp: a job of several ranks needs MASTER_ADDR and MASTER_PORT');
    try {
      if (rank === HUB) await t.#listen(rendezvous, timeoutMs);
      else await t.#join(rendezvous, timeoutMs);
    } catch (err) {
      await t.close();
      throw err;
    }
    return t;
  }

  async #listen(rv: Rendezvous, timeoutMs: number): Promise<void> {
    const server = createServer();
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err) =>
        reject(
          new TransportError(`tcp: rank 0 cannot listen on ${rv.host}:${rv.port}: ${err.message}`, {
            cause: err,
          }),
        ),
      );
      server.listen({ host: rv.host, port: rv.port }, resolve);
    });
    // After listening, an accept error (EMFILE) must not crash the process: the job then fails
    // by its deadline with the count of ranks that did connect.
    server.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(
          new TransportError(
            `tcp: only ${this.#peers.size + 1} of ${this.worldSize} ranks reached ${rv.host}:${rv.port} within ${timeoutMs} ms`,
          ),
        );
      }, timeoutMs);
      server.on('connection', (sock) => {
        sock.setNoDelay(true);
        sock.on('error', () => {}); // 'close' follows and handles it
        let peer = -1;
        const reader = new FrameReader(
          (h) => this.#begin(h),
          (h, sink) => {
            if (peer >= 0) return this.#end(h, sink);
            const valid =
              h.kind === Kind.Hello &&
              h.from > 0 &&
              h.from < this.worldSize &&
              h.bucketId === this.worldSize &&
              !this.#peers.has(h.from);
            if (!valid) return void sock.destroy(); // wrong job, duplicate rank or stray client
            peer = h.from;
            this.#peers.set(peer, sock);
            if (this.#peers.size === this.worldSize - 1) {
              clearTimeout(timer);
              server.close(); // no late joiners: the job is complete
              for (const [to, s] of this.#peers) s.write(encodeHeader(control(Kind.Ready, HUB, to)));
              resolve();
            }
          },
        );
        sock.on('data', (chunk: Buffer) => this.#feed(sock, reader, chunk));
        sock.on('close', () => {
          if (peer >= 0 && this.#peers.get(peer) === sock) this.#peerLost(peer);
        });
      });
    });
  }

  async #join(rv: Rendezvous, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    let sock: Socket;
    for (;;) {
      try {
        sock = await dial(rv);
        break;
      } catch (err) {
        // rank 0 may simply not be listening yet
        if (Date.now() > deadline) {
          throw new TransportError(
            `tcp: rank ${this.rank} could not reach rank 0 at ${rv.host}:${rv.port} within ${timeoutMs} ms: ${(err as Error).message}`,
            { cause: err },
          );
        }
        await sleep(100);
      }
    }
    sock.setNoDelay(true);
    sock.on('error', () => {}); // 'close' follows and handles it
    this.#peers.set(HUB, sock);
    await new Promise<void>((resolve, reject) => {
      let ready = false;
      const timer = setTimeout(
        () =>
          reject(
            new TransportError(
              `tcp: the job did not start within ${timeoutMs} ms (are all ${this.worldSize} ranks running?)`,
            ),
          ),
        Math.max(1, deadline - Date.now()),
      );
      const reader = new FrameReader(
        (h) => this.#begin(h),
        (h, sink) => {
          if (ready) return this.#end(h, sink);
          if (h.kind === Kind.Ready) {
            ready = true;
            clearTimeout(timer);
            resolve();
          }
        },
      );
      sock.on('data', (chunk: Buffer) => this.#feed(sock, reader, chunk));
      sock.on('close', () => {
        clearTimeout(timer);
        if (ready) return this.#peerLost(HUB);
        reject(
          new TransportError(
            `tcp: rank 0 at ${rv.host}:${rv.port} hung up before the job started (does its WORLD_SIZE equal ${this.worldSize}? is rank ${this.rank} started twice?)`,
          ),
        );
      });
      sock.write(encodeHeader({ ...control(Kind.Hello, this.rank, HUB), bucketId: this.worldSize }));
    });
  }

  #feed(sock: Socket, reader: FrameReader, chunk: Buffer): void {
    try {
      reader.push(chunk);
    } catch (err) {
      sock.destroy(err as Error); // a malformed stream cannot be resynchronised
    }
  }

  broadcast(request: BroadcastRequest): Promise<void> {
    const { bucketId, root, ranks, data, signal } = request;
    // Bad input is refused here, before any peer hears of it, with the words every transport uses.
    try {
      checkBroadcastRequest(request, this.rank, this.worldSize);
    } catch (err) {
      return Promise.reject(err);
    }
    // Every participant counts its calls per (root, bucket) in the same order, so the count names
    // this broadcast on every rank, even for an aborted call.
    const counter = `${root}:${bucketId}`;
    const seq = this.#issued.get(counter) ?? 0;
    this.#issued.set(counter, seq + 1);
    const key = keyOf(root, bucketId, seq);
    const others = ranks.filter((r) => r !== this.rank);
    const isRoot = this.rank === root;
    const tellOthers = (reason: string) => {
      const payload = Buffer.from(reason);
      const header = { kind: Kind.Abort, bucketId, seq, from: this.rank, root, length: payload.length };
      for (const to of isRoot ? others : [root]) this.#send({ ...header, to }, payload);
    };
    if (signal?.aborted) {
      tellOthers('aborted before it started');
      return Promise.reject(aborted(bucketId, signal));
    }
    const unusable =
      (this.#closing && 'the transport is closed') ||
      this.#broken ||
      (isRoot ? others : [root]).filter((r) => this.#lost.has(r)).map((r) => `rank ${r} has left the job`)[0];
    if (unusable) return Promise.reject(new TransportError(`tcp: bucket ${bucketId}: ${unusable}`));
    if (others.length === 0) return Promise.resolve();

    return new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        const p = this.#pending.get(key);
        if (!p || !signal) return;
        this.#fail(key, p, aborted(bucketId, signal));
        tellOthers(String((signal.reason as Error)?.message ?? signal.reason ?? 'aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      const pending: Pending = {
        role: isRoot ? 'send' : 'receive',
        data,
        waiting: new Set(isRoot ? others : []),
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (err) => {
          signal?.removeEventListener('abort', onAbort);
          reject(err);
        },
      };
      this.#pending.set(key, pending);
      if (isRoot) {
        for (const to of others) {
          const header = { kind: Kind.Data, bucketId, seq, from: this.rank, to, root, length: data.length };
          if (!this.#send(header, data)) {
            return this.#fail(
              key,
              pending,
              new TransportError(`tcp: bucket ${bucketId}: no connection to rank ${to}`),
            );
          }
        }
        return;
      }
      const early = this.#early.get(key);
      if (!early) return;
      this.#early.delete(key);
      if (early.header.kind === Kind.Abort) this.#onAbort(early.header, early.payload);
      else this.#onData(early.header, { buffer: early.payload });
    });
  }

  /** Picks where an incoming payload goes: straight into a waiting receive when there is one. */
  #begin(h: FrameHeader): Sink {
    if (h.kind === Kind.Data && h.to === this.rank) {
      const p = this.#pending.get(keyOf(h.root, h.bucketId, h.seq));
      if (p?.role === 'receive' && !p.sink && p.data.length === h.length) {
        p.sink = { buffer: p.data };
        return p.sink;
      }
      if (this.#isStale(h)) return { buffer: null }; // for a receive this rank already gave up on
    }
    return { buffer: h.length === 0 ? null : Buffer.allocUnsafe(h.length) };
  }

  #end(h: FrameHeader, sink: Sink): void {
    const payload = sink.buffer ?? new Uint8Array(0);
    if (h.to !== this.rank) {
      this.#relay(h, payload);
      return;
    }
    const key = keyOf(h.root, h.bucketId, h.seq);
    if (h.kind === Kind.Data) this.#onData(h, sink);
    else if (h.kind === Kind.Abort) this.#onAbort(h, payload);
    else if (h.kind === Kind.PeerLost) this.#peerLost(h.from);
    else if (h.kind === Kind.Ack) {
      const p = this.#pending.get(key);
      if (p?.role !== 'send') return;
      p.waiting.delete(h.from);
      if (p.waiting.size === 0) {
        this.#pending.delete(key);
        p.resolve();
      }
    }
  }

  #onData(h: FrameHeader, sink: Sink): void {
    const key = keyOf(h.root, h.bucketId, h.seq);
    const p = this.#pending.get(key);
    if (p?.role !== 'receive') {
      if (!this.#isStale(h)) this.#early.set(key, { header: h, payload: sink.buffer ?? new Uint8Array(0) });
      return;
    }
    if (p.sink !== sink) {
      if (h.length !== p.data.length) {
        const reason = `rank ${this.rank} expected ${p.data.length} B, root sent ${h.length} B`;
        this.#fail(key, p, new TransportError(`tcp: bucket ${h.bucketId}: ${reason}`));
        const payload = Buffer.from(reason);
        this.#send({ ...h, kind: Kind.Abort, from: this.rank, to: h.root, length: payload.length }, payload);
        return;
      }
      if (sink.buffer) p.data.set(sink.buffer);
    }
    this.#pending.delete(key);
    this.#send({ ...h, kind: Kind.Ack, from: this.rank, to: h.root, length: 0 });
    p.resolve();
  }

  #onAbort(h: FrameHeader, payload: Uint8Array): void {
    const key = keyOf(h.root, h.bucketId, h.seq);
    const p = this.#pending.get(key);
    const reason = Buffer.from(payload).toString('utf8');
    if (p) {
      this.#fail(
        key,
        p,
        new TransportError(`tcp: bucket ${h.bucketId}: rank ${h.from} aborted it: ${reason}`),
      );
    } else if (!this.#isStale(h)) {
      this.#early.set(key, { header: h, payload });
    }
  }

  /** A frame for a broadcast this rank already issued and no longer waits for (it was aborted). */
  #isStale(h: FrameHeader): boolean {
    const issued = this.#issued.get(`${h.root}:${h.bucketId}`) ?? 0;
    return h.seq < issued && !this.#pending.has(keyOf(h.root, h.bucketId, h.seq));
  }

  /** Rank 0 only: passes a frame between two other ranks. */
  #relay(h: FrameHeader, payload: Uint8Array): void {
    if (this.#send(h, payload) || h.kind === Kind.Abort || h.kind === Kind.PeerLost) return;
    const reason = Buffer.from(`rank ${h.to} is not connected`);
    this.#send({ ...h, kind: Kind.Abort, from: h.to, to: h.from, length: reason.length }, reason);
  }

  /** Writes one frame; header and payload are queued back to back so frames never interleave. */
  #send(h: FrameHeader, payload?: Uint8Array): boolean {
    const sock = this.#peers.get(this.rank === HUB ? h.to : HUB);
    if (!sock || sock.destroyed || !sock.writable) return false;
    // Node queues what the kernel does not take yet; the Replicator's window bounds how much.
    sock.write(encodeHeader(h));
    if (payload && payload.length > 0) sock.write(payload);
    return true;
  }

  #fail(key: string, p: Pending, err: Error): void {
    this.#pending.delete(key);
    if (p.sink) p.sink.buffer = null; // drop the rest of a payload that was landing in p.data
    p.reject(err);
  }

  #peerLost(rank: number): void {
    if (this.#closing) return;
    this.#lost.add(rank);
    if (this.rank === HUB) {
      this.#peers.delete(rank);
      for (const to of this.#peers.keys()) this.#send(control(Kind.PeerLost, rank, to));
    } else if (rank === HUB) {
      this.#broken = 'lost the connection to rank 0 (every frame goes through it)';
    }
    for (const [key, p] of this.#pending) {
      // Only a root that still owes bytes, or a consumer that has not acknowledged, matters.
      const needed = p.role === 'send' ? p.waiting.has(rank) : key.startsWith(`${rank}:`);
      if (rank === HUB || needed) {
        this.#fail(key, p, new TransportError(`tcp: rank ${rank} left the job while a bucket was in flight`));
      }
    }
  }

  /** Frees sockets and the listener. Safe to call twice; pending broadcasts reject. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    for (const [key, p] of this.#pending)
      this.#fail(key, p, new TransportError('tcp: the transport was closed'));
    this.#early.clear();
    this.#server?.close();
    const socks = [...this.#peers.values()];
    if (this.rank === HUB) await Promise.all(socks.map((s) => socketClosed(s, HUB_LINGER_MS)));
    for (const s of socks) s.end();
    await Promise.all(socks.map((s) => socketClosed(s, 2000)));
    for (const s of socks) s.destroy();
    this.#peers.clear();
  }
}

function control(kind: Kind, from: number, to: number): FrameHeader {
  return { kind, bucketId: 0, seq: 0, from, to, root: 0, length: 0 };
}

function aborted(bucketId: number, signal: AbortSignal): TransportError {
  return new TransportError(`tcp: broadcast of bucket ${bucketId} aborted`, {
    cause: signal.reason,
    code: 'HW_ABORTED',
  });
}

function dial(rv: Rendezvous): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const sock = connect({ host: rv.host, port: rv.port });
    sock.once('connect', () => {
      sock.off('error', reject);
      resolve(sock);
    });
    sock.once('error', reject);
  });
}
