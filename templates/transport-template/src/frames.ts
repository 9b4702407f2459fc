/**
 * The wire format: every message is a fixed 40-byte header followed by `length` payload bytes.
 * Data frames carry one bucket's bytes for one destination; the key (root, bucket id, sequence)
 * lets several buckets be in flight on one socket and lets a bucket id be reused by a later update.
 */

export const MAGIC = 0x48575450; // "HWTP"
export const HEADER_BYTES = 40;

export enum Kind {
  /** Bucket bytes from `root` to `to`. */
  Data = 1,
  /** `from` holds the whole bucket. */
  Ack = 2,
  /** `from` gave up on this bucket; payload is the reason (UTF-8). */
  Abort = 3,
  /** First frame on a connection: `from` is the rank, `bucketId` carries the world size. */
  Hello = 4,
  /** The hub saw every rank: the job may start. */
  Ready = 5,
  /** The hub lost the connection to rank `from`. */
  PeerLost = 6,
}

export interface FrameHeader {
  readonly kind: Kind;
  readonly bucketId: number;
  readonly seq: number;
  readonly from: number;
  readonly to: number;
  readonly root: number;
  readonly length: number;
}

export function encodeHeader(h: FrameHeader): Buffer {
  const b = Buffer.alloc(HEADER_BYTES);
  b.writeUInt32LE(MAGIC, 0);
  b.writeUInt8(h.kind, 4);
  b.writeUInt32LE(h.bucketId, 8);
  b.writeUInt32LE(h.seq, 12);
  b.writeUInt32LE(h.from, 16);
  b.writeUInt32LE(h.to, 20);
  b.writeUInt32LE(h.root, 24);
  b.writeBigUInt64LE(BigInt(h.length), 32);
  return b;
}

function decodeHeader(b: Buffer): FrameHeader {
  if (b.readUInt32LE(0) !== MAGIC) throw new Error('bad frame magic: the peer does not speak this protocol');
  const kind = b.readUInt8(4);
  if (kind < Kind.Data || kind > Kind.PeerLost) throw new Error(`unknown frame kind ${kind}`);
  return {
    kind,
    bucketId: b.readUInt32LE(8),
    seq: b.readUInt32LE(12),
    from: b.readUInt32LE(16),
    to: b.readUInt32LE(20),
    root: b.readUInt32LE(24),
    length: Number(b.readBigUInt64LE(32)),
  };
}

/** Where a frame's payload goes. Set `buffer` to null to drop the rest of it (an aborted receive). */
export interface Sink {
  buffer: Uint8Array | null;
}

/**
 * Incremental parser for one socket. `begin` picks where the payload lands (the caller's own
 * buffer when a receive is waiting, so big payloads are copied once); `end` gets the frame.
 */
export class FrameReader {
  readonly #header = Buffer.alloc(HEADER_BYTES);
  #headerFill = 0;
  #current: { header: FrameHeader; sink: Sink; filled: number } | undefined;

  constructor(
    private readonly begin: (header: FrameHeader) => Sink,
    private readonly end: (header: FrameHeader, sink: Sink) => void,
  ) {}

  /** Throws on a malformed stream; the caller drops the connection. */
  push(chunk: Buffer): void {
    let pos = 0;
    while (pos < chunk.length) {
      if (!this.#current) {
        const n = Math.min(HEADER_BYTES - this.#headerFill, chunk.length - pos);
        chunk.copy(this.#header, this.#headerFill, pos, pos + n);
        this.#headerFill += n;
        pos += n;
        if (this.#headerFill < HEADER_BYTES) return;
        this.#headerFill = 0;
        const header = decodeHeader(this.#header);
        this.#current = { header, sink: this.begin(header), filled: 0 };
      }
      const cur = this.#current;
      const n = Math.min(cur.header.length - cur.filled, chunk.length - pos);
      if (n > 0) {
        cur.sink.buffer?.set(chunk.subarray(pos, pos + n), cur.filled);
        cur.filled += n;
        pos += n;
      }
      if (cur.filled === cur.header.length) {
        this.#current = undefined;
        this.end(cur.header, cur.sink);
      }
    }
  }
}
