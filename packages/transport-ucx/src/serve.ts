/**
 * Serving staged buckets to ranks that arrive after the broadcasts, over a UCP worker of its own
 * (so its tags never meet the broadcasts'). A request is one small tagged message: which bucket,
 * which byte range, the reply tag, and the asker's UCX worker address; the server connects back
 * by that address and sends the range. A range of a bucket it does not serve is answered with an
 * empty message, which the asker reports as such.
 */
import { TransportError } from '@hotweights/core';
import type { UcpWorker } from './worker.js';

const REQUEST_TAG = 1n;
const REPLY_BIT = 1n << 63n;
const MAX_REQUEST_BYTES = 16 * 1024;

interface Request {
  readonly bucket: number;
  readonly offset: number;
  readonly length: number;
  readonly reply: number;
  readonly from: string;
}

/** The serving side: answers requests for the buckets given to `serve`. */
export class BucketServer {
  readonly #worker: UcpWorker;
  readonly #served = new Map<number, Uint8Array>();
  /** Asker addresses -> endpoint ids on the worker (negative: never a rank). */
  readonly #askers = new Map<string, number>();
  #listening = false;
  #closed = false;
  /** Bytes sent to askers so far. */
  sentBytes = 0;

  constructor(worker: UcpWorker) {
    this.#worker = worker;
  }

  get address(): Uint8Array {
    return this.#worker.address;
  }

  serve(bucketId: number, data: Uint8Array): void {
    this.#served.set(bucketId, data);
    if (!this.#listening) {
      this.#listening = true;
      void this.#listen();
    }
  }

  async #listen(): Promise<void> {
    while (!this.#closed) {
      const buf = new Uint8Array(MAX_REQUEST_BYTES);
      let length: number;
      try {
        length = await this.#worker.recv(buf, REQUEST_TAG, 'waiting for fetch requests').done;
      } catch {
        return; // closed
      }
      let req: Request;
      try {
        req = JSON.parse(Buffer.from(buf.subarray(0, length)).toString('utf8')) as Request;
      } catch {
        continue; // not one of ours
      }
      this.#answer(req);
    }
  }

  #answer(req: Request): void {
    let ep = this.#askers.get(req.from);
    if (ep === undefined) {
      ep = -1 - this.#askers.size;
      this.#askers.set(req.from, ep);
      this.#worker.connect(ep, new Uint8Array(Buffer.from(req.from, 'base64')));
    }
    const data = this.#served.get(req.bucket);
    const ok = data !== undefined && req.offset >= 0 && req.offset + req.length <= data.byteLength;
    const view = ok ? data.subarray(req.offset, req.offset + req.length) : new Uint8Array(0);
    const op = this.#worker.send(ep, view, REPLY_BIT | BigInt(req.reply), `serving bucket ${req.bucket}`);
    op.done.then(
      () => {
        this.sentBytes += view.byteLength;
      },
      () => {}, // the asker went away: it reports its own failure
    );
  }

  close(): void {
    this.#closed = true;
  }
}

/** The asking side: fetches byte ranges of buckets from ranks' BucketServers. */
export class BucketFetcher {
  readonly #worker: UcpWorker;
  readonly #servers: readonly (Uint8Array | undefined)[];
  readonly #connected = new Set<number>();
  #next = 0;

  constructor(worker: UcpWorker, servers: readonly (Uint8Array | undefined)[]) {
    this.#worker = worker;
    this.#servers = servers;
  }

  async fetch(bucketId: number, from: number, offset: number, data: Uint8Array, signal?: AbortSignal) {
    const server = this.#servers[from];
    if (!server?.byteLength) {
      throw new TransportError(`bucket ${bucketId}: rank ${from} serves nothing over UCX in this update`);
    }
    if (!this.#connected.has(from)) {
      this.#worker.connect(from, server);
      this.#connected.add(from);
    }
    this.#next = (this.#next + 1) % 2 ** 31;
    const reply = this.#next;
    const what = `fetching bucket ${bucketId} [${offset}, ${offset + data.byteLength}) from rank ${from}`;
    const landing = this.#worker.recv(data, REPLY_BIT | BigInt(reply), what);
    const request: Request = {
      bucket: bucketId,
      offset,
      length: data.byteLength,
      reply,
      from: Buffer.from(this.#worker.address).toString('base64'),
    };
    const asked = this.#worker.send(from, Buffer.from(JSON.stringify(request)), REQUEST_TAG, what);
    const onAbort = () => {
      landing.cancel();
      asked.cancel();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    try {
      await asked.done;
      const length = await landing.done;
      if (length !== data.byteLength) {
        throw new TransportError(
          `bucket ${bucketId}: rank ${from} does not serve [${offset}, ${offset + data.byteLength}) of it (${length} B came back)`,
        );
      }
    } catch (err) {
      if (err instanceof TransportError) throw err;
      throw new TransportError(`${what}: ${(err as Error).message}`, { cause: err, details: { peer: from } });
    } finally {
      signal?.removeEventListener('abort', onAbort);
    }
  }
}
